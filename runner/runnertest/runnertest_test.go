package runnertest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/runner"
	"github.com/pasops/pasupgrade/runner/runnertest"
)

// recorder stands in for *testing.T so the fake's own failures can be
// checked.
type recorder struct {
	errors   []string
	cleanups []func()
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) finish() {
	for _, f := range r.cleanups {
		f()
	}
}

func TestFakeRepliesInOrder(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("dpkg-query", "-W").Stdout("ok\n")
	fake.Expect("systemctl", "restart", "x").AsUser("")

	res, err := fake.Run(context.Background(), runner.Command{Argv: []string{"dpkg-query", "-W"}})
	require.NoError(t, err)
	assert.Equal(t, "ok\n", string(res.Stdout))

	_, err = fake.Run(context.Background(), runner.Command{Argv: []string{"systemctl", "restart", "x"}})
	require.NoError(t, err)
	assert.Len(t, fake.Calls(), 2)
}

func TestFakeExitCodeIsExitError(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("false").Stderr("boom").Exit(1)

	_, err := fake.Run(context.Background(), runner.Command{Argv: []string{"false"}})
	var exitErr *runner.ExitError
	require.ErrorAs(t, err, &exitErr)
	assert.Equal(t, 1, exitErr.ExitCode)
	assert.Equal(t, "boom", exitErr.Tail)
}

func TestFakeFailsOnUnexpectedCommand(t *testing.T) {
	rec := &recorder{}
	fake := runnertest.New(rec)
	fake.Expect("a")

	_, err := fake.Run(context.Background(), runner.Command{Argv: []string{"b"}})
	require.Error(t, err)
	require.Len(t, rec.errors, 1)
	assert.Contains(t, rec.errors[0], "unexpected command b")
	assert.Contains(t, rec.errors[0], "still expected: a")
}

func TestFakeFailsOnMissingCommand(t *testing.T) {
	rec := &recorder{}
	fake := runnertest.New(rec)
	fake.Expect("never", "ran")
	rec.finish()
	require.Len(t, rec.errors, 1)
	assert.Contains(t, rec.errors[0], "never ran")
}

func TestFakeWrongUserIsUnexpected(t *testing.T) {
	rec := &recorder{}
	fake := runnertest.New(rec)
	fake.Expect("pas-update").AsUser("pas")

	_, err := fake.Run(context.Background(), runner.Command{Argv: []string{"pas-update"}})
	require.Error(t, err)
	assert.Len(t, rec.errors, 1)
}

func TestFakeAnyOrderAndStdin(t *testing.T) {
	fake := runnertest.New(t).AnyOrder()
	fake.ExpectPrefix("debconf-set-selections")
	fake.Expect("b")

	_, err := fake.Run(context.Background(), runner.Command{Argv: []string{"b"}})
	require.NoError(t, err)
	_, err = fake.Run(context.Background(), runner.Command{
		Argv:  []string{"debconf-set-selections"},
		Stdin: strings.NewReader("pkg/q boolean true\n"),
	})
	require.NoError(t, err)
	assert.Equal(t, "pkg/q boolean true\n", fake.Stdin(1))
}
