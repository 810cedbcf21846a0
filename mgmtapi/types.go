package mgmtapi

import (
	"fmt"
	"strings"
)

// Endpoints are the request paths of the management REST API. The API is
// not publicly documented, so every path is a setting: DefaultEndpoints
// lists the paths that PAS 4.8.0 and 4.9.0 serve, and a config file can
// override any of them. Paths are relative to the client's base URL.
type Endpoints struct {
	// Login takes POST {"username","password"} and returns {"token"}.
	Login string `json:"login" yaml:"login"`
	// Export takes GET with ?kind=running and returns the file.
	Export string `json:"export" yaml:"export"`
	// Import takes a POST of multipart field "file".
	Import string `json:"import" yaml:"import"`
	// Apply takes POST to start a config apply and GET Apply+"/{id}" for
	// the job's state.
	Apply string `json:"apply" yaml:"apply"`
	// Status returns the nodes and their components.
	Status string `json:"status" yaml:"status"`
	// Changes returns the pending changes.
	Changes string `json:"changes" yaml:"changes"`
	// Version returns the management component's version.
	Version string `json:"version" yaml:"version"`
}

// DefaultEndpoints returns the paths the PAS management component serves.
func DefaultEndpoints() Endpoints {
	return Endpoints{
		Login:   "/api/login",
		Export:  "/api/config/export",
		Import:  "/api/config/import",
		Apply:   "/api/config/apply",
		Status:  "/api/status",
		Changes: "/api/changes",
		Version: "/api/version",
	}
}

// WithDefaults returns e with every empty path taken from DefaultEndpoints.
func (e Endpoints) WithDefaults() Endpoints {
	d := DefaultEndpoints()
	fill := func(p *string, def string) {
		if *p == "" {
			*p = def
		}
	}
	fill(&e.Login, d.Login)
	fill(&e.Export, d.Export)
	fill(&e.Import, d.Import)
	fill(&e.Apply, d.Apply)
	fill(&e.Status, d.Status)
	fill(&e.Changes, d.Changes)
	fill(&e.Version, d.Version)
	return e
}

// EndpointNames lists the names Set accepts, in the order of the fields.
var EndpointNames = []string{"login", "export", "import", "apply", "status", "changes", "version"}

// Set sets the path of the endpoint called name, one of EndpointNames, as
// a config file or a command line names it. The path must start with "/".
func (e *Endpoints) Set(name, path string) error {
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?#") {
		return fmt.Errorf("invalid path %q for endpoint %s: want an absolute path such as /api/status, "+
			"without query", path, name)
	}
	fields := map[string]*string{
		"login": &e.Login, "export": &e.Export, "import": &e.Import, "apply": &e.Apply,
		"status": &e.Status, "changes": &e.Changes, "version": &e.Version,
	}
	field, ok := fields[name]
	if !ok {
		return fmt.Errorf("unknown endpoint %q; use one of %s", name, strings.Join(EndpointNames, ", "))
	}
	*field = path
	return nil
}

// ApplyJobPath returns the path of one apply job's state.
func (e Endpoints) ApplyJobPath(id string) string {
	return strings.TrimSuffix(e.Apply, "/") + "/" + id
}

// Values of Component.ReloadSuccess and NodeResult.ReloadSuccess, as the
// Status and Changes pages of the web UI show them.
const (
	ReloadOK      = "OK"
	ReloadFailed  = "FAILED"
	ReloadUnknown = "UNKNOWN"
)

// Values of ApplyJob.State.
const (
	ApplyRunning   = "running"
	ApplySucceeded = "succeeded"
	ApplyFailed    = "failed"
)

// Values of Component.State.
const (
	StateRunning = "running"
	StateStopped = "stopped"
	StateFailed  = "failed"
)

// Status is the reply of the status endpoint: every node of the
// installation and its components.
type Status struct {
	Nodes []Node `json:"nodes"`
}

// Node is one host of the installation.
type Node struct {
	Name string `json:"name"`
	// Role is "mgmt", "core", "storage" or "ha".
	Role       string      `json:"role"`
	Components []Component `json:"components"`
}

// Component is one PAS component running on a node.
type Component struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// State is StateRunning, StateStopped or StateFailed.
	State string `json:"state"`
	// ReloadSuccess is ReloadOK, ReloadFailed or ReloadUnknown.
	ReloadSuccess string `json:"reload_success"`
}

// FailedReloads returns the names of the nodes that have a component whose
// reload success is FAILED, in the order of s.Nodes. The upgrade guide
// requires a config apply, even with no pending changes, when this is not
// empty.
func (s Status) FailedReloads() []string {
	var names []string
	for _, n := range s.Nodes {
		for _, c := range n.Components {
			if c.ReloadSuccess == ReloadFailed {
				names = append(names, n.Name)
				break
			}
		}
	}
	return names
}

// Changes is the reply of the changes endpoint.
type Changes struct {
	Pending []Change `json:"pending"`
}

// Change is one configuration change that is not applied yet.
type Change struct {
	ID      string `json:"id"`
	Summary string `json:"summary"`
}

// ApplyJob is the state of one config apply.
type ApplyJob struct {
	ID string `json:"id"`
	// State is ApplyRunning, ApplySucceeded or ApplyFailed.
	State string       `json:"state"`
	Nodes []NodeResult `json:"nodes"`
}

// NodeResult is the outcome of a config apply on one node.
type NodeResult struct {
	Name string `json:"name"`
	// ReloadSuccess is ReloadOK, ReloadFailed or ReloadUnknown.
	ReloadSuccess string `json:"reload_success"`
	Message       string `json:"message,omitempty"`
}

// notOK returns the names of the nodes whose reload success is not OK.
func (j ApplyJob) notOK() []string {
	var names []string
	for _, n := range j.Nodes {
		if n.ReloadSuccess != ReloadOK {
			names = append(names, n.Name)
		}
	}
	return names
}

// ErrorBody is the JSON body of every error reply:
// {"error":{"code","message","request_id"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the content of an error reply.
type ErrorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// LoginRequest is the body of a login request.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// LoginReply is the body of a successful login.
type LoginReply struct {
	Token string `json:"token"`
}

// ImportReply is the body of a successful import.
type ImportReply struct {
	PendingChanges int `json:"pending_changes"`
}

// ApplyStarted is the body of an accepted config apply.
type ApplyStarted struct {
	ID string `json:"id"`
}

// VersionReply is the body of the version endpoint.
type VersionReply struct {
	Version string `json:"version"`
}
