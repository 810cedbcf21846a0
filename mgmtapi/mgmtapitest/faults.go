package mgmtapitest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Kinds of Fault that change the reply to a request.
const (
	// FaultStatus replies with Status and a JSON error body, before the
	// request body is read, with a Retry-After header when RetryAfter is set.
	FaultStatus = "status"
	// FaultHTML replies with Status and an HTML page, as a proxy in front
	// of the management component does.
	FaultHTML = "html"
	// FaultDelay handles the request and then waits Delay before the reply.
	FaultDelay = "delay"
	// FaultDrop handles the request, writes AfterBytes bytes of the reply
	// body and closes the connection. AfterBytes 0 closes it before the
	// status line, which the client sees as a connection reset.
	FaultDrop = "drop"
)

// Kinds of Fault that change the outcome of config applies. Path and Count
// do not apply to them.
const (
	// FaultApplyFail makes the next apply fail with Nodes reporting FAILED.
	FaultApplyFail = "apply_fail"
	// FaultApplyHang makes the next apply stay "running" until the faults
	// are cleared.
	FaultApplyHang = "apply_hang"
	// FaultNodeReloadFailed makes Nodes report reload success FAILED until
	// the next apply that succeeds.
	FaultNodeReloadFailed = "node_reload_failed"
)

// Fault is a scripted misbehaviour of the server. Tests add faults with the
// Handler's methods; the simulator also takes them as JSON on
// POST /_sim/faults.
type Fault struct {
	Kind string `json:"kind"`

	// Path selects the requests: an exact URL path, or a prefix when it ends
	// in "*". Empty matches every path.
	Path string `json:"path,omitempty"`

	// Count is how many matching requests the fault affects; 0 means 1 and
	// a negative count means every matching request until the faults are
	// cleared.
	Count int `json:"count,omitempty"`

	Status     int           `json:"status,omitempty"`
	RetryAfter int           `json:"retry_after,omitempty"` // seconds
	Delay      time.Duration `json:"delay,omitempty"`       // nanoseconds in JSON
	AfterBytes int64         `json:"after_bytes,omitempty"`
	Nodes      []string      `json:"nodes,omitempty"`
}

// validate checks f and fills defaults.
func (f *Fault) validate() error {
	switch f.Kind {
	case FaultStatus:
		if f.Status < 400 || f.Status > 599 {
			return fmt.Errorf("fault %q needs a status from 400 to 599, got %d", f.Kind, f.Status)
		}
	case FaultHTML:
		// 200 is allowed: a captive portal sends its page with 200.
		if f.Status < 200 || f.Status > 599 {
			return fmt.Errorf("fault %q needs a status from 200 to 599, got %d", f.Kind, f.Status)
		}
	case FaultDelay:
		if f.Delay <= 0 {
			return fmt.Errorf("fault %q needs a positive delay, got %s", f.Kind, f.Delay)
		}
	case FaultDrop:
		if f.AfterBytes < 0 {
			return fmt.Errorf("fault %q needs after_bytes >= 0, got %d", f.Kind, f.AfterBytes)
		}
	case FaultApplyFail, FaultNodeReloadFailed:
		if len(f.Nodes) == 0 {
			return fmt.Errorf("fault %q needs at least one node name", f.Kind)
		}
	case FaultApplyHang:
	default:
		return fmt.Errorf("unknown fault kind %q; use status, html, delay, drop, "+
			"apply_fail, apply_hang or node_reload_failed", f.Kind)
	}
	if f.Count == 0 {
		f.Count = 1
	}
	return nil
}

// matches reports whether f applies to a request for path.
func (f *Fault) matches(path string) bool {
	if prefix, ok := strings.CutSuffix(f.Path, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return f.Path == "" || f.Path == path
}

// isRequestFault reports whether f is consumed by a matching request rather
// than by an apply.
func (f *Fault) isRequestFault() bool {
	switch f.Kind {
	case FaultStatus, FaultHTML, FaultDelay, FaultDrop:
		return true
	}
	return false
}

// takeRequestFault returns the first request fault that matches path and
// uses up one of its count. h.mu is held.
func (h *Handler) takeRequestFault(path string) *Fault {
	for i, f := range h.faults {
		if !f.isRequestFault() || !f.matches(path) {
			continue
		}
		matched := *f
		if f.Count > 0 {
			f.Count--
			if f.Count == 0 {
				h.faults = append(h.faults[:i], h.faults[i+1:]...)
			}
		}
		return &matched
	}
	return nil
}

// takeApplyFault returns the first apply fault and removes it. h.mu is held.
func (h *Handler) takeApplyFault() *Fault {
	for i, f := range h.faults {
		if f.Kind == FaultApplyFail || f.Kind == FaultApplyHang {
			h.faults = append(h.faults[:i], h.faults[i+1:]...)
			return f
		}
	}
	return nil
}

// answerFault writes the reply of a FaultStatus or FaultHTML fault.
func answerFault(w http.ResponseWriter, f *Fault, requestID string) {
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(f.RetryAfter))
	}
	// The body was not read: closing the connection keeps the unread
	// upload from being taken as the next request.
	w.Header().Set("Connection", "close")
	if f.Kind == FaultHTML {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(f.Status)
		fmt.Fprintf(w, "<html><head><title>%d %s</title></head><body><h1>%s</h1></body></html>\n",
			f.Status, http.StatusText(f.Status), http.StatusText(f.Status))
		return
	}
	writeError(w, requestID, f.Status, "injected_fault",
		fmt.Sprintf("fault injected by the test: %s", http.StatusText(f.Status)))
}

// faultWriter applies FaultDelay and FaultDrop to a reply as the handler
// writes it, and counts the bytes written for the request log.
type faultWriter struct {
	http.ResponseWriter
	ctx     context.Context
	fault   *Fault
	started bool
	written int64
	status  int
}

// start runs before the first byte of the reply goes out.
func (fw *faultWriter) start(status int) {
	if fw.started {
		return
	}
	fw.started = true
	fw.status = status
	if fw.fault == nil {
		return
	}
	switch fw.fault.Kind {
	case FaultDelay:
		select {
		case <-time.After(fw.fault.Delay):
		case <-fw.ctx.Done():
		}
	case FaultDrop:
		if fw.fault.AfterBytes == 0 {
			// ErrAbortHandler makes net/http close the connection
			// without logging a stack trace.
			panic(http.ErrAbortHandler)
		}
	}
}

func (fw *faultWriter) WriteHeader(status int) {
	fw.start(status)
	fw.ResponseWriter.WriteHeader(status)
}

func (fw *faultWriter) Write(p []byte) (int, error) {
	fw.start(http.StatusOK)
	if fw.fault != nil && fw.fault.Kind == FaultDrop {
		limit := fw.fault.AfterBytes - fw.written
		if int64(len(p)) >= limit {
			n, _ := fw.ResponseWriter.Write(p[:limit])
			fw.written += int64(n)
			_ = http.NewResponseController(fw.ResponseWriter).Flush()
			panic(http.ErrAbortHandler)
		}
	}
	n, err := fw.ResponseWriter.Write(p)
	fw.written += int64(n)
	return n, err
}

// ReadFrom hands io.Copy to the server's own ReadFrom, which uses sendfile
// for files, unless a FaultDrop needs to count the bytes.
func (fw *faultWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := fw.ResponseWriter.(io.ReaderFrom)
	if !ok || (fw.fault != nil && fw.fault.Kind == FaultDrop) {
		return io.Copy(writerOnly{fw}, src)
	}
	fw.start(http.StatusOK)
	n, err := rf.ReadFrom(src)
	fw.written += n
	return n, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (fw *faultWriter) Unwrap() http.ResponseWriter { return fw.ResponseWriter }

// writerOnly hides ReadFrom so io.Copy falls back to Write.
type writerOnly struct{ io.Writer }
