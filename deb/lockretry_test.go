package deb

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/runner/runnertest"
)

// debconf-set-selections that failed on the debconf lock is run again
// with the same answers on stdin, not with the empty rest of a reader the
// first run consumed.
func TestLockRetryResendsStdin(t *testing.T) {
	const debconfLocked = "debconf: DbDriver \"config\": /var/cache/debconf/config.dat is locked by another process: " +
		"Resource temporarily unavailable\n"
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections").Exit(1).Stderr(debconfLocked)
	fake.Expect("debconf-set-selections")
	m := &Manager{Runner: fake, LockWait: time.Hour, LockPoll: time.Millisecond}
	sels := Selections([]string{CorePackage}, true, "")

	err := m.setSelections(context.Background(), sels, nil)

	require.NoError(t, err)
	want := CorePackage + " " + CorePackage + "/overwrite-config boolean true\n"
	assert.Equal(t, want, fake.Stdin(0))
	assert.Equal(t, want, fake.Stdin(1), "the retry")
}
