package lab

import (
	"context"
	"strings"

	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"

	"github.com/pasops/pasupgrade/runner"
)

// NodeStatus is the observed state of one lab node.
type NodeStatus struct {
	LabNode
	// State is the container's state ("running", "exited", ...) or
	// "missing" when the container is gone.
	State string `json:"state"`
	// UnitStates maps each of the node's PAS units to what
	// "systemctl is-active" prints for it.
	UnitStates map[string]string `json:"unit_states"`
}

// Status returns the state of every node of the lab. A node whose
// container is gone is reported as "missing", not as an error.
func (l *Lab) Status(ctx context.Context, cli client.APIClient) ([]NodeStatus, error) {
	var out []NodeStatus
	for _, n := range l.Nodes {
		st := NodeStatus{LabNode: n, UnitStates: map[string]string{}}
		inspect, err := cli.ContainerInspect(ctx, n.ContainerID)
		switch {
		case errdefs.IsNotFound(err):
			st.State = "missing"
		case err != nil:
			return nil, err
		default:
			st.State = inspect.State.Status
		}
		if st.State == "running" && len(n.Units) > 0 {
			node := &Node{ID: n.ContainerID, Name: n.Container, cli: cli}
			argv := append([]string{"systemctl", "is-active"}, n.Units...)
			// is-active exits 3 when a unit is not active; its output still
			// lists every unit's state.
			res, _ := node.Run(ctx, runner.Command{Argv: argv})
			states := strings.Fields(string(res.Stdout))
			for i, unit := range n.Units {
				st.UnitStates[unit] = "unknown"
				if i < len(states) {
					st.UnitStates[unit] = states[i]
				}
			}
		}
		out = append(out, st)
	}
	return out, nil
}
