package main

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// printer renders what commands report. In text mode, results go to stdout
// and progress, warnings and errors to stderr. In JSON mode every report is
// one JSON object per line on stdout, and nothing else is written there.
type printer struct {
	s    streams
	json bool
	now  func() time.Time

	mu sync.Mutex
}

func newPrinter(s streams, jsonMode bool) *printer {
	return &printer{s: s, json: jsonMode, now: time.Now}
}

// event is one JSON line: its type, the time, and the fields of data merged
// in at the top level when data is a struct or a map.
type event struct {
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	Data any       `json:"data,omitempty"`
}

// Event reports something that happened. In text mode text is printed to
// stdout when it is not empty; in JSON mode data is sent as an event of
// type kind.
func (p *printer) Event(kind, text string, data any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		p.writeJSON(event{Type: kind, Time: p.now().UTC(), Data: data})
		return
	}
	if text != "" {
		fmt.Fprintln(p.s.Out, text)
	}
}

// Infof prints a progress line to stderr in text mode, or an "info" event.
func (p *printer) Infof(format string, args ...any) {
	p.line("info", format, args...)
}

// Warnf prints a warning to stderr in text mode, or a "warning" event.
func (p *printer) Warnf(format string, args ...any) {
	p.line("warning", format, args...)
}

// Error prints the error that ends the command.
func (p *printer) Error(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		p.writeJSON(event{Type: "error", Time: p.now().UTC(), Data: map[string]any{
			"message": err.Error(), "exit_code": exitCodeOf(err),
		}})
		return
	}
	fmt.Fprintf(p.s.ErrOut, "error: %v\n", err)
}

func (p *printer) line(kind, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		p.writeJSON(event{Type: kind, Time: p.now().UTC(), Data: map[string]string{"message": msg}})
		return
	}
	if kind == "warning" {
		msg = "warning: " + msg
	}
	fmt.Fprintln(p.s.ErrOut, msg)
}

// writeJSON writes one event. p.mu is held.
func (p *printer) writeJSON(e event) {
	b, err := json.Marshal(e)
	if err != nil {
		b, _ = json.Marshal(event{Type: "error", Time: e.Time, Data: map[string]string{
			"message": fmt.Sprintf("encoding a %s event: %v", e.Type, err),
		}})
	}
	p.s.Out.Write(append(b, '\n'))
}

// progress is a running count of work done, shown as a bar on a terminal.
type progress interface {
	// Set reports the work done so far, in the unit given to Progress.
	Set(done int64)
	// Finish completes the display. It is safe to call more than once.
	Finish()
}

// Progress starts a progress display for total units (bytes when bytes is
// true). It draws a bar only in text mode with stderr on a terminal, and
// otherwise shows nothing, so piped output stays clean.
func (p *printer) Progress(label string, total int64, bytes bool) progress {
	if p.json || !p.s.ErrIsTerminal {
		return noProgress{}
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(p.s.ErrOut),
		progressbar.OptionSetDescription(label),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionShowElapsedTimeOnFinish(),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true))
	}
	return &barProgress{bar: progressbar.NewOptions64(total, opts...)}
}

type barProgress struct {
	bar  *progressbar.ProgressBar
	once sync.Once
}

func (b *barProgress) Set(done int64) { _ = b.bar.Set64(done) }
func (b *barProgress) Finish()        { b.once.Do(func() { _ = b.bar.Finish() }) }

type noProgress struct{}

func (noProgress) Set(int64) {}
func (noProgress) Finish()   {}
