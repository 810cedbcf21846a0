package deb

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/runner/runnertest"
)

const debconfLockedMessage = "debconf: DbDriver \"config\": /var/cache/debconf/config.dat is locked by another process: " +
	"Resource temporarily unavailable\n"

// debconf-set-selections that failed on the debconf lock is run again
// with the same answers on stdin, not with the empty rest of a reader the
// first run consumed.
func TestLockRetryResendsStdin(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections").Exit(1).Stderr(debconfLockedMessage)
	fake.Expect("debconf-set-selections")
	m := &Manager{Runner: fake, LockWait: time.Hour, LockPoll: time.Millisecond}
	sels := Selections([]string{CorePackage}, true, "")

	err := m.setSelections(context.Background(), sels, nil)

	require.NoError(t, err)
	want := CorePackage + " " + CorePackage + "/overwrite-config boolean true\n"
	assert.Equal(t, want, fake.Stdin(0))
	assert.Equal(t, want, fake.Stdin(1), "the retry")
}

// debconf-communicate, which reads the answers back where
// debconf-get-selections is not installed, waits for the debconf lock
// too, rather than reading a failure on the lock as missing answers.
func TestConfirmWaitsForDebconfLock(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("debconf-get-selections").Exit(127).Stderr("debconf-get-selections: command not found\n")
	fake.Expect("debconf-communicate").Exit(1).Stderr(debconfLockedMessage)
	fake.Expect("debconf-communicate").Stdout("0 true\n")
	m := &Manager{Runner: fake, LockWait: time.Hour, LockPoll: time.Millisecond}
	sels := Selections([]string{CorePackage}, true, "")

	err := m.confirmSelections(context.Background(), sels, nil)

	require.NoError(t, err)
}

// A debconf-communicate that fails before it replies to every question
// is an error, so a password check cannot pass on an empty reply.
func TestClearPasswordCommunicateFails(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Exit(127).Stderr("debconf-get-selections: command not found\n")
	fake.Expect("debconf-communicate").Exit(255).Stderr("Can't locate Debconf/Db.pm in @INC\n")
	m := &Manager{Runner: fake}

	err := m.clearPassword(context.Background(), testPassword)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "debconf-communicate")
}
