package pasupgradetest

import (
	"fmt"
	"io"
	"sync"
)

// Reporter is a TB for programs outside "go test", such as examples that run
// a plan against System: it writes each failure to W and runs the cleanup
// functions, where System compares its log, when Close is called.
type Reporter struct {
	W io.Writer

	mu       sync.Mutex
	failed   bool
	cleanups []func()
}

// Helper does nothing; it exists to satisfy TB.
func (r *Reporter) Helper() {}

// Errorf writes the failure to W and marks the reporter failed.
func (r *Reporter) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
	fmt.Fprintf(r.W, "FAIL: "+format+"\n", args...)
}

// Cleanup registers fn to run at Close, last registered first.
func (r *Reporter) Cleanup(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, fn)
}

// Close runs the cleanup functions and reports whether anything failed.
// It is safe to call more than once; each cleanup runs once.
func (r *Reporter) Close() (failed bool) {
	r.mu.Lock()
	cleanups := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}
