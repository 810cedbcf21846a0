package runner

import (
	"bytes"
	"io"
	"sync"
)

// capture keeps the last MaxCapture bytes written to it, redacted.
type capture struct {
	mu      sync.Mutex
	buf     []byte
	secrets []string
}

func newCapture(secrets []string) *capture { return &capture{secrets: secrets} }

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	if len(c.buf) > 2*MaxCapture {
		c.buf = append(c.buf[:0], c.buf[len(c.buf)-MaxCapture:]...)
	}
	return len(p), nil
}

// Bytes returns the redacted capture. Redacting the whole buffer at the end
// catches a secret that was split across two writes.
func (c *capture) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []byte(Redact(string(c.buf), c.secrets))
	if len(out) > MaxCapture {
		out = out[len(out)-MaxCapture:]
	}
	return out
}

func redactingOrNil(w io.Writer, secrets []string) *RedactingWriter {
	if w == nil {
		return nil
	}
	return NewRedactingWriter(w, secrets)
}

func teeTo(capture *capture, live *RedactingWriter) io.Writer {
	if live == nil {
		return capture
	}
	return io.MultiWriter(capture, live)
}

func flushAll(writers ...*RedactingWriter) {
	for _, w := range writers {
		if w != nil {
			_ = w.Flush()
		}
	}
}

// RedactingWriter forwards complete lines to W with secrets replaced by
// "***". It holds back a partial line until its newline arrives or Flush is
// called, so a secret split across two writes is still caught.
type RedactingWriter struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string
	pending []byte
}

// NewRedactingWriter returns a RedactingWriter that writes to w. With no
// non-empty secrets it still buffers by line.
func NewRedactingWriter(w io.Writer, secrets []string) *RedactingWriter {
	return &RedactingWriter{w: w, secrets: secrets}
}

// Write implements io.Writer. It reports len(p) written unless the
// underlying writer fails.
func (r *RedactingWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, p...)
	end := bytes.LastIndexByte(r.pending, '\n')
	if end < 0 {
		// A prompt without a newline must still reach the operator, so
		// long partial lines are flushed once they cannot hide a secret.
		if len(r.pending) < 4096 {
			return len(p), nil
		}
		end = len(r.pending) - 1
	}
	chunk := Redact(string(r.pending[:end+1]), r.secrets)
	r.pending = append(r.pending[:0], r.pending[end+1:]...)
	if _, err := io.WriteString(r.w, chunk); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes any partial line that is still held back.
func (r *RedactingWriter) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 {
		return nil
	}
	chunk := Redact(string(r.pending), r.secrets)
	r.pending = r.pending[:0]
	_, err := io.WriteString(r.w, chunk)
	return err
}
