package mgmtapitest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pasops/pasupgrade/mgmtapi"
)

// Options configures a Handler.
type Options struct {
	// Version is the management component's version, served by the version
	// endpoint and used for the components of the default node. An import
	// whose pas_config_version differs is rejected with 400
	// "incompatible_config". Default "4.8.0".
	Version string

	// StateDir keeps the running configuration, the pending import, apply
	// jobs and node reload states across restarts. It must exist.
	StateDir string

	// HtpasswdFile, when set, is the file logins are checked against. It is
	// read again at each login. Otherwise Users is used.
	HtpasswdFile string

	// Users maps user names to passwords, for tests that need no file.
	Users map[string]string

	// StatusFile, when set, is a JSON file in the shape of the status reply
	// that someone else keeps up to date with each node's components. The
	// handler reads it at each status request and sets every component's
	// reload success from its own apply results. Without it, the handler
	// serves the nodes of SetNodes, or else one node "mgmt" with the
	// components mgmt, storage and core.
	StatusFile string

	// EnableControl serves the /_sim/ endpoints that add faults and dump
	// the state. They are not part of the product's API and need no login.
	EnableControl bool

	// ApplyDuration is how long an apply job stays "running". Default 0:
	// the job has finished by the first time it is read.
	ApplyDuration time.Duration

	// Endpoints are the paths served. Empty paths take the defaults.
	Endpoints mgmtapi.Endpoints

	// Logger receives starts, faults and errors. Nil discards them.
	Logger *slog.Logger

	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Handler is the fake management API: an http.Handler with state. Tests
// serve it with Start or StartTLS; cmd/pas-mgmt-sim serves it as a process.
// Its methods are safe for concurrent use.
type Handler struct {
	opts  Options
	paths mgmtapi.Endpoints
	log   *slog.Logger
	now   func() time.Time

	mu       sync.Mutex
	st       *state
	tokens   map[string]string // token to user name
	issued   []string          // every token issued, expired ones too
	faults   []*Fault
	requests []Request
	nodeList []mgmtapi.Node // set by SetNodes
}

// Request is one request as the handler recorded it. It holds no header,
// password or token.
type Request struct {
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Query  string    `json:"query,omitempty"`
	Status int       `json:"status"`

	// ContentLength is the request's declared body length, -1 for a
	// chunked body.
	ContentLength int64 `json:"content_length"`

	// Authorized reports whether the request carried a valid token.
	Authorized bool `json:"authorized"`

	// Fault is the kind of the fault that changed the reply, if any.
	Fault string `json:"fault,omitempty"`

	// Upload is the size and SHA-256 of an uploaded file, for imports that
	// were read to the end.
	UploadBytes  int64  `json:"upload_bytes,omitempty"`
	UploadSHA256 string `json:"upload_sha256,omitempty"`

	// ReplyBytes counts the bytes of the reply body written.
	ReplyBytes int64 `json:"reply_bytes"`
}

// maxRequests bounds the request log of a long-running simulator.
const maxRequests = 10000

// NewHandler returns a Handler with the state found in opts.StateDir,
// writing a default running configuration there when it has none.
func NewHandler(opts Options) (*Handler, error) {
	if opts.Version == "" {
		opts.Version = "4.8.0"
	}
	if opts.StateDir == "" {
		return nil, errors.New("mgmtapitest: missing state directory")
	}
	if info, err := os.Stat(opts.StateDir); err != nil || !info.IsDir() {
		return nil, fmt.Errorf("mgmtapitest: state directory %q is not a directory: create it first",
			opts.StateDir)
	}
	st, err := loadState(opts.StateDir)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		opts:   opts,
		paths:  opts.Endpoints.WithDefaults(),
		log:    opts.Logger,
		now:    opts.Now,
		st:     st,
		tokens: map[string]string{},
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}

	if st.RunningVersion == "" {
		st.RunningVersion = opts.Version
	}
	running := filepath.Join(opts.StateDir, runningFile)
	if _, err := os.Stat(running); errors.Is(err, os.ErrNotExist) && st.SyntheticSize == 0 {
		if err := writeFileAtomic(running, defaultConfig(opts.Version)); err != nil {
			return nil, fmt.Errorf("writing the default running configuration: %w", err)
		}
	}
	return h, nil
}

// ServeHTTP routes a request to the API or, with EnableControl, to the
// /_sim/ endpoints.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Request{Time: h.now().UTC(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		ContentLength: r.ContentLength}
	requestID := newID(8)
	w.Header().Set("X-Request-Id", requestID)

	if h.opts.EnableControl && strings.HasPrefix(r.URL.Path, controlPrefix) {
		h.serveControl(w, r, requestID)
		return
	}

	h.mu.Lock()
	fault := h.takeRequestFault(r.URL.Path)
	h.mu.Unlock()
	fw := &faultWriter{ResponseWriter: w, ctx: r.Context(), fault: fault}
	if fault != nil {
		rec.Fault = fault.Kind
		h.log.Info("injecting a fault", "kind", fault.Kind, "path", r.URL.Path, "request_id", requestID)
	}
	defer func() {
		rec.Status = fw.status
		rec.ReplyBytes = fw.written
		h.record(rec)
	}()

	if fault != nil && (fault.Kind == FaultStatus || fault.Kind == FaultHTML) {
		answerFault(fw, fault, requestID)
		return
	}
	h.route(fw, r, requestID, &rec)
}

// route dispatches an API request.
func (h *Handler) route(w http.ResponseWriter, r *http.Request, requestID string, rec *Request) {
	path := r.URL.Path
	if path == h.paths.Login {
		if !allowMethod(w, r, requestID, http.MethodPost) {
			return
		}
		h.serveLogin(w, r, requestID)
		return
	}

	user, ok := h.authorize(r)
	rec.Authorized = ok
	if !ok {
		writeError(w, requestID, http.StatusUnauthorized, "unauthorized",
			"missing or expired token: log in again")
		return
	}
	h.log.Debug("request", "method", r.Method, "path", path, "user", user, "request_id", requestID)

	method, serve, ok := h.endpointFor(path)
	if !ok {
		writeError(w, requestID, http.StatusNotFound, "not_found", "no endpoint "+path)
		return
	}
	if !allowMethod(w, r, requestID, method) {
		return
	}
	serve(w, r, requestID, rec)
}

// serveFunc serves one authorized API request.
type serveFunc func(w http.ResponseWriter, r *http.Request, requestID string, rec *Request)

// endpointFor returns the method of the endpoint at path and the function
// that serves it.
func (h *Handler) endpointFor(path string) (string, serveFunc, bool) {
	jobPrefix := strings.TrimSuffix(h.paths.Apply, "/") + "/"
	switch {
	case path == h.paths.Export:
		return http.MethodGet, func(w http.ResponseWriter, r *http.Request, id string, _ *Request) {
			h.serveExport(w, r, id)
		}, true
	case path == h.paths.Import:
		return http.MethodPost, h.serveImport, true
	case path == h.paths.Apply:
		return http.MethodPost, func(w http.ResponseWriter, _ *http.Request, id string, _ *Request) {
			h.serveApply(w, id)
		}, true
	case strings.HasPrefix(path, jobPrefix):
		return http.MethodGet, func(w http.ResponseWriter, _ *http.Request, id string, _ *Request) {
			h.serveApplyJob(w, id, strings.TrimPrefix(path, jobPrefix))
		}, true
	case path == h.paths.Status:
		return http.MethodGet, func(w http.ResponseWriter, _ *http.Request, id string, _ *Request) {
			h.serveStatus(w, id)
		}, true
	case path == h.paths.Changes:
		return http.MethodGet, func(w http.ResponseWriter, _ *http.Request, _ string, _ *Request) {
			h.serveChanges(w)
		}, true
	case path == h.paths.Version:
		return http.MethodGet, func(w http.ResponseWriter, _ *http.Request, _ string, _ *Request) {
			writeJSON(w, http.StatusOK, mgmtapi.VersionReply{Version: h.opts.Version})
		}, true
	}
	return "", nil, false
}

// allowMethod reports whether r uses method, and replies 405 otherwise.
func allowMethod(w http.ResponseWriter, r *http.Request, requestID, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	writeError(w, requestID, http.StatusMethodNotAllowed, "method_not_allowed",
		r.Method+" is not allowed on "+r.URL.Path+"; use "+method)
	return false
}

// serveLogin checks the user name and password and returns a new token.
func (h *Handler) serveLogin(w http.ResponseWriter, r *http.Request, requestID string) {
	var req mgmtapi.LoginRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		writeError(w, requestID, http.StatusBadRequest, "invalid_request",
			"the login body is not JSON with username and password")
		return
	}
	ok, err := h.checkPassword(req.Username, req.Password)
	if err != nil {
		h.log.Error("checking a login", "user", req.Username, "request_id", requestID, "error", err)
		writeError(w, requestID, http.StatusInternalServerError, "internal_error",
			"the password file cannot be checked")
		return
	}
	if !ok {
		h.log.Info("login failed", "user", req.Username, "request_id", requestID)
		writeError(w, requestID, http.StatusUnauthorized, "invalid_credentials",
			"wrong user name or password")
		return
	}
	token := newID(32)
	h.mu.Lock()
	h.tokens[token] = req.Username
	if len(h.issued) < maxRequests {
		h.issued = append(h.issued, token)
	}
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, mgmtapi.LoginReply{Token: token})
}

func (h *Handler) checkPassword(user, password string) (bool, error) {
	if h.opts.HtpasswdFile != "" {
		return checkHtpasswd(h.opts.HtpasswdFile, user, password)
	}
	want, ok := h.opts.Users[user]
	if !ok {
		return false, nil
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(password)) == 1, nil
}

// authorize returns the user of the request's bearer token.
func (h *Handler) authorize(r *http.Request) (string, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return "", false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	user, ok := h.tokens[token]
	return user, ok
}

// record appends rec to the request log.
func (h *Handler) record(rec Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.requests) >= maxRequests {
		h.requests = h.requests[1:]
	}
	h.requests = append(h.requests, rec)
}

// writeJSON writes v as the JSON reply.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":{"code":"internal_error","message":"encoding the reply failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)+1))
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// writeError writes the API's error body.
func writeError(w http.ResponseWriter, requestID string, status int, code, message string) {
	writeJSON(w, status, mgmtapi.ErrorBody{Error: mgmtapi.ErrorDetail{
		Code: code, Message: message, RequestID: requestID,
	}})
}

// newID returns n random bytes in hex.
func newID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// hashFile returns the size and SHA-256 of a file.
func hashReader(r io.Reader) (int64, string, error) {
	sum := sha256.New()
	n, err := io.Copy(sum, r)
	return n, hex.EncodeToString(sum.Sum(nil)), err
}
