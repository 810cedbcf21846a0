package mgmtapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinel errors that callers branch on with errors.Is.
var (
	// ErrUnauthorized matches a 401 reply: a wrong password at login, or a
	// token the server no longer accepts.
	ErrUnauthorized = errors.New("mgmtapi: unauthorized")
	// ErrNotFound matches a 404 reply.
	ErrNotFound = errors.New("mgmtapi: not found")
	// ErrConflict matches a 409 reply, such as a config apply while another
	// one is running.
	ErrConflict = errors.New("mgmtapi: conflict")

	// ErrNotLoggedIn is returned by calls made before a successful Login.
	ErrNotLoggedIn = errors.New("mgmtapi: not logged in; call Login first")

	// ErrInvalidReply matches a reply that is not what the API sends: an
	// HTML page where JSON was expected, a body shorter or longer than its
	// Content-Length, or JSON of the wrong shape.
	ErrInvalidReply = errors.New("mgmtapi: invalid reply")

	// ErrInvalidCA matches a CA bundle that yields no certificate.
	ErrInvalidCA = errors.New("mgmtapi: invalid CA bundle")

	// ErrApplyFailed matches a config apply that finished as failed.
	ErrApplyFailed = errors.New("mgmtapi: config apply failed")
	// ErrApplyTimeout matches a config apply still running at the timeout.
	ErrApplyTimeout = errors.New("mgmtapi: config apply timed out")
	// ErrApplyUnconfirmed matches a config apply request that got no reply:
	// the server may or may not have started an apply.
	ErrApplyUnconfirmed = errors.New("mgmtapi: config apply request unconfirmed")
)

// APIError is an error reply of the management API.
type APIError struct {
	// Method and URL identify the request. The URL never holds a secret.
	Method string
	URL    string

	// Status is the HTTP status code.
	Status int

	// Code, Message and RequestID come from the error body. They are empty
	// when the body was not the API's error JSON.
	Code      string
	Message   string
	RequestID string
}

// Error returns the request, status, code, message and request id.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request id %s)", e.RequestID)
	}
	return b.String()
}

// Is matches ErrUnauthorized, ErrNotFound and ErrConflict by status.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	}
	return false
}

// ApplyError reports a config apply that failed or timed out. It matches
// ErrApplyFailed or ErrApplyTimeout.
type ApplyError struct {
	// Job is the last state read from the server.
	Job ApplyJob
	// TimedOut is true when the apply was still running at the timeout.
	TimedOut bool
	// Timeout is the time waited, for a timed-out apply.
	Timeout string
}

// Error names the apply and the nodes that did not reload.
func (e *ApplyError) Error() string {
	nodes := e.Job.notOK()
	if e.TimedOut {
		return fmt.Sprintf("config apply %s still running after %s; nodes not finished: %s; "+
			"check the Status page, then apply again", e.Job.ID, e.Timeout, joinOrNone(nodes))
	}
	var details []string
	for _, n := range e.Job.Nodes {
		if n.ReloadSuccess == ReloadOK {
			continue
		}
		d := n.Name + " (" + n.ReloadSuccess
		if n.Message != "" {
			d += ": " + n.Message
		}
		details = append(details, d+")")
	}
	return fmt.Sprintf("config apply %s failed on nodes %s", e.Job.ID, joinOrNone(details))
}

// Unwrap returns ErrApplyTimeout or ErrApplyFailed.
func (e *ApplyError) Unwrap() error {
	if e.TimedOut {
		return ErrApplyTimeout
	}
	return ErrApplyFailed
}

func joinOrNone(names []string) string {
	if len(names) == 0 {
		return "(none reported)"
	}
	return strings.Join(names, ", ")
}
