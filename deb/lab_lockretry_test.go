package deb_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/deb"
	"github.com/pasops/pasupgrade/deb/debtest"
	"github.com/pasops/pasupgrade/runner"
)

// debconf-set-selections fails while a maintainer script holds the debconf
// database. Once the lock is free, Install stores the answers with the
// retried command and installs the package.
func TestLabPreseedAfterDebconfLock(t *testing.T) {
	f := newLabFixture(t)
	node := f.startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	slow := debtest.Build(t, f.work, debtest.Spec{Name: "pasupgrade-debtest-slow", Version: "1.0",
		Scripts: map[string]string{"postinst": "#!/bin/sh\n. /usr/share/debconf/confmodule\ntouch /tmp/slow-locked\nsleep 10\n"}})
	asking := singleSet(t, debtest.Build(t, f.work, debtest.Spec{Name: "pasupgrade-debtest-asks", Version: "1.0",
		Templates: "Template: pasupgrade-debtest-asks/overwrite-config\nType: boolean\nDescription: overwrite?\n"}))
	nodeRun(t, node, "sh", "-c", "dpkg --install "+slow+" >/tmp/slow.log 2>&1 &")
	// The confmodule runs the script under debconf, which holds its
	// database lock from then until the script ends.
	nodeRun(t, node, "sh", "-c", "for i in $(seq 300); do [ -e /tmp/slow-locked ] && exit 0; sleep 0.1; done; exit 1")
	var transcript bytes.Buffer
	m := &deb.Manager{Runner: &runner.Transcript{Runner: node, W: &transcript}, LockWait: 2 * time.Minute, LockPoll: 250 * time.Millisecond}
	var events []deb.Event
	m.OnEvent = func(e deb.Event) { events = append(events, e) }

	_, err := m.Install(ctx, asking, deb.InstallOptions{OverwriteConfig: true})

	require.NoError(t, err, transcript.String())
	assert.Contains(t, eventKinds(events), deb.EventLockWait)
	answer := nodeRun(t, node, "sh", "-c", "echo GET pasupgrade-debtest-asks/overwrite-config | debconf-communicate")
	assert.Equal(t, "0 true", strings.TrimSpace(answer))
}
