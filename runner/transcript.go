package runner

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// Transcript wraps a Runner and appends every command, its output and its
// outcome to W, with secrets redacted. It is safe for concurrent use; the
// entries of concurrent commands do not interleave.
type Transcript struct {
	Runner Runner
	W      io.Writer

	// Now returns the time stamped on each entry. Nil means time.Now.
	Now func() time.Time

	mu sync.Mutex
}

// Run implements Runner.
func (t *Transcript) Run(ctx context.Context, c Command) (Result, error) {
	res, err := t.Runner.Run(ctx, c)

	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.W, "[%s] $ %s\n", now().UTC().Format(time.RFC3339), c.String())
	if c.Dir != "" {
		fmt.Fprintf(t.W, "  (in %s)\n", c.Dir)
	}
	writeIndented(t.W, "stdout", res.Stdout)
	writeIndented(t.W, "stderr", res.Stderr)
	switch {
	case err == nil:
		fmt.Fprintf(t.W, "  exit 0 after %s\n", res.Duration.Round(time.Millisecond))
	default:
		fmt.Fprintf(t.W, "  failed after %s: %s\n", res.Duration.Round(time.Millisecond),
			Redact(err.Error(), c.Secrets))
	}
	return res, err
}

func writeIndented(w io.Writer, label string, out []byte) {
	if len(out) == 0 {
		return
	}
	fmt.Fprintf(w, "  %s:\n", label)
	start := 0
	for i, b := range out {
		if b == '\n' {
			fmt.Fprintf(w, "    %s\n", out[start:i])
			start = i + 1
		}
	}
	if start < len(out) {
		fmt.Fprintf(w, "    %s\n", out[start:])
	}
}
