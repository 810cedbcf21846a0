package deb

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/pasops/pasupgrade/runner"
)

func TestCommandNotFound(t *testing.T) {
	cmd := runner.Command{Argv: []string{"debconf-get-selections"}}
	exitWith := func(code int, out string) error {
		return runner.NewExitError(cmd, runner.Result{ExitCode: code, Stderr: []byte(out)})
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"os/exec lookup", fmt.Errorf("starting: %w", &exec.Error{Name: "x", Err: exec.ErrNotFound}), true},
		{"shell exit 127", exitWith(127, "sh: 1: debconf-get-selections: not found"), true},
		{"docker exec", exitWith(126, `exec: "debconf-get-selections": executable file not found in $PATH: unknown`), true},
		{"not executable", exitWith(126, "permission denied"), false},
		{"ordinary failure", exitWith(1, "debconf: cannot open config.dat"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, commandNotFound(tt.err))
		})
	}
}
