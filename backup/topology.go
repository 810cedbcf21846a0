package backup

import "fmt"

// Topology is the PAS installation layout. It decides whether the pas
// user's SSH directory belongs to the backup.
type Topology string

// Topologies the guide distinguishes.
const (
	TopologySingle Topology = "single"
	TopologyMulti  Topology = "multi"
)

// ParseTopology returns the Topology named s ("single" or "multi").
func ParseTopology(s string) (Topology, error) {
	switch t := Topology(s); t {
	case TopologySingle, TopologyMulti:
		return t, nil
	}
	return "", fmt.Errorf("invalid topology %q: expected %q or %q", s, TopologySingle, TopologyMulti)
}
