package lab

import (
	"io"
	"sync"

	"github.com/pasops/pasupgrade/runner"
)

// terminalInput forwards the input of one runner.Terminal to a node's
// interactive commands, one command after another. A single goroutine
// reads the input for all of them, so input that arrives after a command
// ended goes to the next command. A reader per command would still be
// waiting in Read when its command ends and would swallow that input.
type terminalInput struct {
	terminal *runner.Terminal
	chunks   chan []byte

	mu sync.Mutex
	// pending is a chunk that was read for a command that ended before
	// the chunk was written. The next command gets it first.
	pending []byte
}

func newTerminalInput(terminal *runner.Terminal) *terminalInput {
	in := &terminalInput{terminal: terminal, chunks: make(chan []byte)}
	go in.read()
	return in
}

// read sends the terminal's input in chunks until it ends. It blocks
// between commands, holding at most one chunk.
func (in *terminalInput) read() {
	for {
		buf := make([]byte, 4096)
		n, err := in.terminal.In.Read(buf)
		if n > 0 {
			in.chunks <- buf[:n]
		}
		if err != nil {
			close(in.chunks)
			return
		}
	}
}

// forward writes the input to w until stop is closed, the input ends or a
// write fails. A chunk that was not written is kept for the next command.
func (in *terminalInput) forward(w io.Writer, stop <-chan struct{}) {
	in.mu.Lock()
	chunk := in.pending
	in.pending = nil
	in.mu.Unlock()
	for {
		if len(chunk) > 0 {
			select {
			case <-stop:
				in.keep(chunk)
				return
			default:
			}
			if _, err := w.Write(chunk); err != nil {
				in.keep(chunk)
				return
			}
		}
		var ok bool
		select {
		case <-stop:
			return
		case chunk, ok = <-in.chunks:
			if !ok {
				return
			}
		}
	}
}

func (in *terminalInput) keep(chunk []byte) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.pending = append(chunk, in.pending...)
}

// terminalInput returns the input forwarder of n.Terminal, or nil when the
// terminal has no input. A new Terminal gets a new forwarder.
func (n *Node) terminalInput() *terminalInput {
	if n.Terminal == nil || n.Terminal.In == nil {
		return nil
	}
	n.inputMu.Lock()
	defer n.inputMu.Unlock()
	if n.input == nil || n.input.terminal != n.Terminal {
		n.input = newTerminalInput(n.Terminal)
	}
	return n.input
}
