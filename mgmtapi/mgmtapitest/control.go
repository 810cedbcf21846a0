package mgmtapitest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pasops/pasupgrade/mgmtapi"
)

// controlPrefix starts the paths of the control endpoints.
const controlPrefix = "/_sim/"

// AddFault schedules f. It returns an error naming the field when f is
// invalid.
func (h *Handler) AddFault(f Fault) error {
	if err := f.validate(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if f.Kind == FaultNodeReloadFailed {
		for _, n := range f.Nodes {
			h.st.NodeReload[n] = mgmtapi.ReloadFailed
		}
		return h.st.save(h.opts.StateDir)
	}
	h.faults = append(h.faults, &f)
	return nil
}

// mustAddFault adds a fault built by one of the helpers below. It panics
// on an invalid fault, such as a status outside 400 to 599.
func (h *Handler) mustAddFault(f Fault) {
	if err := h.AddFault(f); err != nil {
		panic("mgmtapitest: " + err.Error())
	}
}

// FailNext replies to the next count requests to path with status and a JSON
// error body, without reading the request body. Path is as in Fault.
func (h *Handler) FailNext(path string, count, status int) {
	h.mustAddFault(Fault{Kind: FaultStatus, Path: path, Count: count, Status: status})
}

// FailNextRetryAfter is FailNext with a Retry-After header of seconds.
func (h *Handler) FailNextRetryAfter(path string, count, status, seconds int) {
	h.mustAddFault(Fault{Kind: FaultStatus, Path: path, Count: count, Status: status, RetryAfter: seconds})
}

// FailNextHTML replies to the next count requests to path with status and an
// HTML page.
func (h *Handler) FailNextHTML(path string, count, status int) {
	h.mustAddFault(Fault{Kind: FaultHTML, Path: path, Count: count, Status: status})
}

// DelayNext handles the next count requests to path and then waits d
// before replying. The work is done even when the client gives up.
func (h *Handler) DelayNext(path string, count int, d time.Duration) {
	h.mustAddFault(Fault{Kind: FaultDelay, Path: path, Count: count, Delay: d})
}

// DropNext handles the next count requests to path, writes afterBytes
// bytes of the reply body and closes the connection. With afterBytes 0 the
// connection closes before the status line.
func (h *Handler) DropNext(path string, count int, afterBytes int64) {
	h.mustAddFault(Fault{Kind: FaultDrop, Path: path, Count: count, AfterBytes: afterBytes})
}

// FailNextApply makes the next config apply fail, with nodes reporting
// reload success FAILED.
func (h *Handler) FailNextApply(nodes ...string) {
	h.mustAddFault(Fault{Kind: FaultApplyFail, Nodes: nodes})
}

// HangNextApply makes the next config apply stay "running" until
// ClearFaults.
func (h *Handler) HangNextApply() {
	h.mustAddFault(Fault{Kind: FaultApplyHang})
}

// FailNodeReload makes nodes report reload success FAILED until the next
// config apply that succeeds.
func (h *Handler) FailNodeReload(nodes ...string) {
	h.mustAddFault(Fault{Kind: FaultNodeReloadFailed, Nodes: nodes})
}

// SetNodes replaces the default node with nodes, for tests without a
// status file. A status file, when set, takes precedence. The handler fills
// in each component's reload success from its apply results.
func (h *Handler) SetNodes(nodes []mgmtapi.Node) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nodeList = cloneNodes(nodes)
	if h.nodeList == nil {
		h.nodeList = []mgmtapi.Node{}
	}
}

// cloneNodes returns a deep copy, so callers cannot change the handler's
// nodes through their slices.
func cloneNodes(nodes []mgmtapi.Node) []mgmtapi.Node {
	if nodes == nil {
		return nil
	}
	clone := make([]mgmtapi.Node, len(nodes))
	for i, n := range nodes {
		clone[i] = n
		clone[i].Components = append([]mgmtapi.Component(nil), n.Components...)
	}
	return clone
}

// ClearFaults removes every scheduled fault. An apply that a hang fault
// holds "running" then finishes as it would have without the fault, so
// later applies are no longer rejected with 409.
func (h *Handler) ClearFaults() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults = nil
	for _, j := range h.st.Jobs {
		if j.Result == nil && j.Outcome == "hang" {
			j.Outcome = "succeed"
		}
	}
	h.settle()
	if err := h.st.save(h.opts.StateDir); err != nil {
		h.log.Error("saving the simulator state", "error", err)
	}
}

// ExpireTokens invalidates every token, as a restart of the management
// component does, so the next request with one gets 401.
func (h *Handler) ExpireTokens() {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.tokens)
}

// SetRunningConfig replaces the running configuration with the bytes of r.
func (h *Handler) SetRunningConfig(r io.Reader) error {
	tmp, err := os.CreateTemp(h.opts.StateDir, ".running-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		tmp.Close()
		return err
	}
	version, err := configVersion(tmp)
	if err != nil {
		tmp.Close()
		return fmt.Errorf("invalid running configuration: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if err := os.Rename(tmp.Name(), filepath.Join(h.opts.StateDir, runningFile)); err != nil {
		return err
	}
	h.st.SyntheticSize = 0
	h.st.RunningVersion = version
	return h.st.save(h.opts.StateDir)
}

// minSyntheticSize leaves room for the version line of any version.
const minSyntheticSize = 64

// SetRunningConfigSize makes the running configuration a generated file of
// size bytes in the handler's version, which is never written to disk.
func (h *Handler) SetRunningConfigSize(size int64) error {
	if size < minSyntheticSize {
		return fmt.Errorf("synthetic configuration size %d is too small; use at least %d bytes", size,
			minSyntheticSize)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.st.SyntheticSize = size
	h.st.RunningVersion = h.opts.Version
	return h.st.save(h.opts.StateDir)
}

// ConfigInfo describes a stored configuration.
type ConfigInfo struct {
	Version string `json:"version"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
}

// RunningConfig returns the version, size and SHA-256 of the running
// configuration. It reads the whole file, which takes a while for
// gigabytes.
func (h *Handler) RunningConfig() (ConfigInfo, error) {
	h.mu.Lock()
	h.settle()
	version := h.st.RunningVersion
	var src io.Reader
	if h.st.SyntheticSize > 0 {
		src = newSyntheticReader(version, h.st.SyntheticSize)
	} else {
		f, err := os.Open(filepath.Join(h.opts.StateDir, runningFile))
		if err != nil {
			h.mu.Unlock()
			return ConfigInfo{}, err
		}
		defer f.Close()
		src = f
	}
	h.mu.Unlock()

	size, sum, err := hashReader(src)
	return ConfigInfo{Version: version, Size: size, SHA256: sum}, err
}

// PendingChanges returns the changes that wait for a config apply.
func (h *Handler) PendingChanges() []mgmtapi.Change {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.settle()
	return append([]mgmtapi.Change{}, h.st.Pending...)
}

// Requests returns the request log, oldest first.
func (h *Handler) Requests() []Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Request{}, h.requests...)
}

// RequestsTo returns the logged requests with method and path.
func (h *Handler) RequestsTo(method, path string) []Request {
	var matched []Request
	for _, r := range h.Requests() {
		if r.Method == method && r.Path == path {
			matched = append(matched, r)
		}
	}
	return matched
}

// Tokens returns the tokens the handler has issued and still accepts, so
// tests can check that no token leaked into logs or files.
func (h *Handler) Tokens() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	tokens := make([]string, 0, len(h.tokens))
	for t := range h.tokens {
		tokens = append(tokens, t)
	}
	return tokens
}

// IssuedTokens returns every token the handler has issued, including the
// ones that ExpireTokens invalidated, so tests can check that no token
// leaked. It keeps the first 10000.
func (h *Handler) IssuedTokens() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string{}, h.issued...)
}

// Dump is the reply of GET /_sim/state.
type Dump struct {
	Version    string            `json:"version"`
	Running    ConfigInfo        `json:"running"`
	Pending    []mgmtapi.Change  `json:"pending"`
	NodeReload map[string]string `json:"node_reload"`
	Faults     []Fault           `json:"faults"`
	Requests   []Request         `json:"requests"`
}

// serveControl serves the /_sim/ endpoints. They are documented in the
// help of cmd/pas-mgmt-sim.
func (h *Handler) serveControl(w http.ResponseWriter, r *http.Request, requestID string) {
	switch r.Method + " " + r.URL.Path {
	case "POST /_sim/faults":
		var f Fault
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&f); err != nil {
			writeError(w, requestID, http.StatusBadRequest, "invalid_request", "the fault is not JSON: "+err.Error())
			return
		}
		if err := h.AddFault(f); err != nil {
			writeError(w, requestID, http.StatusBadRequest, "invalid_fault", err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case "DELETE /_sim/faults":
		h.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	case "POST /_sim/expire-tokens":
		h.ExpireTokens()
		w.WriteHeader(http.StatusNoContent)
	case "PUT /_sim/running-config":
		h.serveSetRunning(w, r, requestID)
	case "GET /_sim/state":
		h.serveDump(w, requestID)
	default:
		writeError(w, requestID, http.StatusNotFound, "not_found",
			"no control endpoint "+r.Method+" "+r.URL.Path+"; see pas-mgmt-sim --help")
	}
}

// serveSetRunning replaces the running configuration with the request
// body, or with a generated one of ?synthetic_size bytes.
func (h *Handler) serveSetRunning(w http.ResponseWriter, r *http.Request, requestID string) {
	var err error
	if s := r.URL.Query().Get("synthetic_size"); s != "" {
		size, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil {
			writeError(w, requestID, http.StatusBadRequest, "invalid_request", "synthetic_size is not a number: "+s)
			return
		}
		err = h.SetRunningConfigSize(size)
	} else {
		err = h.SetRunningConfig(r.Body)
	}
	if err != nil {
		writeError(w, requestID, http.StatusBadRequest, "invalid_config", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) serveDump(w http.ResponseWriter, requestID string) {
	running, err := h.RunningConfig()
	if err != nil {
		writeError(w, requestID, http.StatusInternalServerError, "internal_error", err.Error())
		return
	}
	h.mu.Lock()
	dump := Dump{
		Version:    h.opts.Version,
		Running:    running,
		Pending:    append([]mgmtapi.Change{}, h.st.Pending...),
		NodeReload: map[string]string{},
		Requests:   append([]Request{}, h.requests...),
	}
	for n, s := range h.st.NodeReload {
		dump.NodeReload[n] = s
	}
	for _, f := range h.faults {
		dump.Faults = append(dump.Faults, *f)
	}
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, dump)
}
