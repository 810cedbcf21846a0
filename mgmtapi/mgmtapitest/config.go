package mgmtapitest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"github.com/pasops/pasupgrade/mgmtapi"
)

// maxJobs bounds the finished apply jobs kept in the state.
const maxJobs = 100

// serveExport streams a configuration file. The handler holds no lock
// while it streams, so other requests go on meanwhile.
func (h *Handler) serveExport(w http.ResponseWriter, r *http.Request, requestID string) {
	kind := r.URL.Query().Get("kind")
	if kind == "" {
		kind = "running"
	}

	h.mu.Lock()
	h.settle()
	var (
		body    io.Reader
		size    int64
		version string
		err     error
	)
	switch kind {
	case "running":
		version = h.st.RunningVersion
		if h.st.SyntheticSize > 0 {
			size = h.st.SyntheticSize
			body = newSyntheticReader(version, size)
		} else {
			body, size, err = openSized(filepath.Join(h.opts.StateDir, runningFile))
		}
	case "pending":
		version = h.st.PendingVersion
		body, size, err = openSized(filepath.Join(h.opts.StateDir, pendingFile))
		if errors.Is(err, os.ErrNotExist) {
			h.mu.Unlock()
			writeError(w, requestID, http.StatusNotFound, "not_found", "no imported configuration is pending")
			return
		}
	default:
		h.mu.Unlock()
		writeError(w, requestID, http.StatusBadRequest, "invalid_kind",
			fmt.Sprintf("unknown configuration kind %q; use running or pending", kind))
		return
	}
	h.mu.Unlock()
	if err != nil {
		h.log.Error("opening the configuration", "kind", kind, "request_id", requestID, "error", err)
		writeError(w, requestID, http.StatusInternalServerError, "internal_error", "the configuration cannot be read")
		return
	}
	if c, ok := body.(io.Closer); ok {
		defer c.Close()
	}

	name := fmt.Sprintf("pas-config-%s-%s.yaml", kind, version)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, body); err != nil {
		h.log.Info("export interrupted", "request_id", requestID, "error", err)
	}
}

// openSized opens a file and returns its size.
func openSized(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, info.Size(), nil
}

// serveImport stores the multipart field "file" as the pending
// configuration. It streams the upload to disk, so size is not limited by
// memory.
func (h *Handler) serveImport(w http.ResponseWriter, r *http.Request, requestID string, rec *Request) {
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, requestID, http.StatusBadRequest, "invalid_request",
			"expected multipart/form-data with a field named file")
		return
	}
	for {
		part, err := mr.NextPart()
		if err != nil {
			writeError(w, requestID, http.StatusBadRequest, "invalid_request",
				"no multipart field named file, or the upload ended early")
			return
		}
		if part.FormName() == "file" {
			h.storeUpload(w, part, part.FileName(), requestID, rec)
			return
		}
	}
}

// storeUpload writes one uploaded file to a temporary file, checks its
// version and renames it to the pending configuration.
func (h *Handler) storeUpload(w http.ResponseWriter, src io.Reader, name, requestID string, rec *Request) {
	tmp, err := os.CreateTemp(h.opts.StateDir, ".upload-*")
	if err != nil {
		h.log.Error("storing an upload", "request_id", requestID, "error", err)
		writeError(w, requestID, http.StatusInternalServerError, "internal_error", "the upload cannot be stored")
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, sum), src)
	if err != nil {
		h.log.Info("upload interrupted", "request_id", requestID, "bytes", n, "error", err)
		writeError(w, requestID, http.StatusBadRequest, "invalid_request", "the upload ended early")
		return
	}
	rec.UploadBytes = n
	rec.UploadSHA256 = hex.EncodeToString(sum.Sum(nil))

	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		writeError(w, requestID, http.StatusInternalServerError, "internal_error", "the upload cannot be read back")
		return
	}
	version, err := configVersion(tmp)
	if err != nil {
		writeError(w, requestID, http.StatusBadRequest, "invalid_config",
			fmt.Sprintf("%s is not a PAS configuration: %v", name, err))
		return
	}
	if version != h.opts.Version {
		writeError(w, requestID, http.StatusBadRequest, "incompatible_config",
			fmt.Sprintf("configuration version %s cannot be imported into PAS %s; "+
				"convert it with pas-mgmt-upgrade-config convert-config", version, h.opts.Version))
		return
	}
	if err := tmp.Close(); err != nil {
		writeError(w, requestID, http.StatusInternalServerError, "internal_error", "the upload cannot be stored")
		return
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if err := os.Rename(tmp.Name(), filepath.Join(h.opts.StateDir, pendingFile)); err != nil {
		h.log.Error("storing an upload", "request_id", requestID, "error", err)
		writeError(w, requestID, http.StatusInternalServerError, "internal_error", "the upload cannot be stored")
		return
	}
	h.st.PendingVersion = version
	h.st.NextID++
	h.st.Pending = []mgmtapi.Change{{
		ID:      fmt.Sprintf("change-%d", h.st.NextID),
		Summary: fmt.Sprintf("import %s (%d bytes, version %s)", name, n, version),
	}}
	if !h.saveLocked(w, requestID) {
		return
	}
	writeJSON(w, http.StatusOK, mgmtapi.ImportReply{PendingChanges: len(h.st.Pending)})
}

// serveApply starts a config apply. It is allowed with no pending changes,
// because the upgrade guide requires one when a node reports FAILED.
func (h *Handler) serveApply(w http.ResponseWriter, requestID string) {
	nodes, ok := h.nodesOrReply(w, requestID)
	if !ok {
		return
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	h.settle()
	for _, j := range h.st.Jobs {
		if j.Result == nil {
			writeError(w, requestID, http.StatusConflict, "apply_in_progress",
				"config apply "+j.ID+" is still running; wait for it to finish")
			return
		}
	}

	h.st.NextID++
	j := &job{
		ID:       fmt.Sprintf("apply-%d", h.st.NextID),
		Started:  h.now().UTC(),
		Duration: h.opts.ApplyDuration,
		Outcome:  "succeed",
	}
	for _, n := range nodes {
		j.Nodes = append(j.Nodes, n.Name)
	}
	if f := h.takeApplyFault(); f != nil {
		j.Outcome = map[string]string{FaultApplyFail: "fail", FaultApplyHang: "hang"}[f.Kind]
		j.FailNodes = f.Nodes
		h.log.Info("injecting a fault", "kind", f.Kind, "apply", j.ID, "nodes", f.Nodes)
	}
	h.st.Jobs[j.ID] = j
	h.pruneJobs()
	h.settle()
	if !h.saveLocked(w, requestID) {
		return
	}
	h.log.Info("config apply started", "apply", j.ID, "nodes", j.Nodes)
	writeJSON(w, http.StatusAccepted, mgmtapi.ApplyStarted{ID: j.ID})
}

// serveApplyJob returns the state of one apply.
func (h *Handler) serveApplyJob(w http.ResponseWriter, requestID, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.settle()
	j, ok := h.st.Jobs[id]
	if !ok {
		writeError(w, requestID, http.StatusNotFound, "not_found", "no config apply with id "+id)
		return
	}
	if j.Result != nil {
		writeJSON(w, http.StatusOK, j.Result)
		return
	}
	reply := mgmtapi.ApplyJob{ID: j.ID, State: mgmtapi.ApplyRunning}
	for _, n := range j.Nodes {
		reply.Nodes = append(reply.Nodes, mgmtapi.NodeResult{Name: n, ReloadSuccess: mgmtapi.ReloadUnknown})
	}
	writeJSON(w, http.StatusOK, reply)
}

// settle finishes the apply jobs whose time has come. h.mu is held.
func (h *Handler) settle() {
	changed := false
	for _, j := range h.st.Jobs {
		if j.Result != nil || j.Outcome == "hang" || h.now().Before(j.Started.Add(j.Duration)) {
			continue
		}
		h.finish(j)
		changed = true
	}
	if changed {
		if err := h.st.save(h.opts.StateDir); err != nil {
			h.log.Error("saving the simulator state", "error", err)
		}
	}
}

// finish records the result of j and, when it succeeded, makes the pending
// configuration the running one. h.mu is held.
func (h *Handler) finish(j *job) {
	result := &mgmtapi.ApplyJob{ID: j.ID, State: mgmtapi.ApplySucceeded}
	for _, name := range j.Nodes {
		n := mgmtapi.NodeResult{Name: name, ReloadSuccess: mgmtapi.ReloadOK}
		if j.Outcome == "fail" && slices.Contains(j.FailNodes, name) {
			n.ReloadSuccess = mgmtapi.ReloadFailed
			n.Message = "reload failed: fault injected by the test"
			result.State = mgmtapi.ApplyFailed
		}
		h.st.NodeReload[name] = n.ReloadSuccess
		result.Nodes = append(result.Nodes, n)
	}
	if j.Outcome == "fail" && result.State != mgmtapi.ApplyFailed {
		// The failing nodes are not in the status: fail the apply anyway.
		result.State = mgmtapi.ApplyFailed
	}
	j.Result = result

	if result.State == mgmtapi.ApplySucceeded && len(h.st.Pending) > 0 {
		pending := filepath.Join(h.opts.StateDir, pendingFile)
		if err := os.Rename(pending, filepath.Join(h.opts.StateDir, runningFile)); err != nil {
			h.log.Error("making the imported configuration the running one", "apply", j.ID, "error", err)
			result.State = mgmtapi.ApplyFailed
			return
		}
		h.st.SyntheticSize = 0
		h.st.RunningVersion = h.st.PendingVersion
		h.st.Pending = nil
	}
	h.log.Info("config apply finished", "apply", j.ID, "state", result.State)
}

// pruneJobs drops the oldest finished jobs beyond maxJobs. h.mu is held.
func (h *Handler) pruneJobs() {
	if len(h.st.Jobs) <= maxJobs {
		return
	}
	jobs := make([]*job, 0, len(h.st.Jobs))
	for _, j := range h.st.Jobs {
		jobs = append(jobs, j)
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].Started.Before(jobs[b].Started) })
	for _, j := range jobs[:len(jobs)-maxJobs] {
		if j.Result != nil {
			delete(h.st.Jobs, j.ID)
		}
	}
}

// saveLocked stores the state and replies 500 when that fails. h.mu is held.
func (h *Handler) saveLocked(w http.ResponseWriter, requestID string) bool {
	if err := h.st.save(h.opts.StateDir); err != nil {
		h.log.Error("saving the simulator state", "request_id", requestID, "error", err)
		writeError(w, requestID, http.StatusInternalServerError, "internal_error", "the state cannot be saved")
		return false
	}
	return true
}

// serveStatus returns the nodes with the reload success of the last apply.
func (h *Handler) serveStatus(w http.ResponseWriter, requestID string) {
	nodes, ok := h.nodesOrReply(w, requestID)
	if !ok {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.settle()
	for i := range nodes {
		reload, ok := h.st.NodeReload[nodes[i].Name]
		if !ok {
			reload = mgmtapi.ReloadUnknown
		}
		for c := range nodes[i].Components {
			nodes[i].Components[c].ReloadSuccess = reload
		}
	}
	writeJSON(w, http.StatusOK, mgmtapi.Status{Nodes: nodes})
}

// nodes returns the nodes from the status file, from SetNodes, or the
// default node, in this order.
func (h *Handler) nodes() ([]mgmtapi.Node, error) {
	h.mu.Lock()
	set := cloneNodes(h.nodeList)
	h.mu.Unlock()
	if h.opts.StatusFile == "" && set != nil {
		return set, nil
	}
	if h.opts.StatusFile == "" {
		var components []mgmtapi.Component
		for _, name := range []string{"mgmt", "storage", "core"} {
			components = append(components, mgmtapi.Component{
				Name: name, Version: h.opts.Version, State: mgmtapi.StateRunning,
			})
		}
		return []mgmtapi.Node{{Name: "mgmt", Role: "mgmt", Components: components}}, nil
	}
	data, err := os.ReadFile(h.opts.StatusFile)
	if err != nil {
		return nil, fmt.Errorf("reading the status file: %w", err)
	}
	var st mgmtapi.Status
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("reading the status file %s: %w", h.opts.StatusFile, err)
	}
	return st.Nodes, nil
}

// nodesOrReply returns the nodes, or replies 500 when the status file
// cannot be read.
func (h *Handler) nodesOrReply(w http.ResponseWriter, requestID string) ([]mgmtapi.Node, bool) {
	nodes, err := h.nodes()
	if err != nil {
		h.log.Error("reading the status file", "request_id", requestID, "error", err)
		writeError(w, requestID, http.StatusInternalServerError, "status_unavailable", err.Error())
		return nil, false
	}
	return nodes, true
}

// serveChanges returns the pending changes.
func (h *Handler) serveChanges(w http.ResponseWriter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.settle()
	reply := mgmtapi.Changes{Pending: append([]mgmtapi.Change{}, h.st.Pending...)}
	writeJSON(w, http.StatusOK, reply)
}
