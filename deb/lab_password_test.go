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
	"github.com/pasops/pasupgrade/runner"
)

// A password that is also part of the question's name, such as "admin" in
// proxedo-api-security-mgmt/admin-password, is redacted there as well in
// what the runner returns. The install still confirms the answers and
// removes the password from the debconf database.
func TestLabPasswordInQuestionName(t *testing.T) {
	f := newLabFixture(t)
	f.buildPackages(t)
	node := f.startNode(t)
	require.NoError(t, node.WriteFile(context.Background(), "/usr/local/bin/debconf-get-selections",
		[]byte(getSelectionsScript), 0o755))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var transcript bytes.Buffer
	m := &deb.Manager{Runner: &runner.Transcript{Runner: node, W: &transcript}}
	_, err := m.Install(ctx, f.set(t, "4.8.0"), deb.InstallOptions{})
	require.NoError(t, err, transcript.String())

	_, err = m.Install(ctx, f.set(t, "4.9.0"), deb.InstallOptions{OverwriteConfig: true, AdminPassword: "admin"})

	require.NoError(t, err, transcript.String())
	htpass := nodeFile(t, node, usersHtpass)
	assert.True(t, strings.HasPrefix(htpass, "admin:$2y$"), htpass)
	answer := nodeRun(t, node, "sh", "-c", "echo GET "+deb.AdminPasswordQuestion+" | debconf-communicate")
	assert.Equal(t, "0", strings.TrimSpace(answer))
	assert.Contains(t, transcript.String(), "/***-password", "the runner redacts the password inside the name")
	assert.Contains(t, transcript.String(), "stored the new *** password hash", "dpkg's output is redacted")
}

// getSelectionsScript is a minimal stand-in for debconf-get-selections from
// debconf-utils, which the node image lacks: a Perl script that prints each
// answer as OWNER, QUESTION, TYPE and VALUE separated by tabs. Installing
// debconf-utils would need a Debian mirror.
const getSelectionsScript = `#!/usr/bin/perl -w
use strict;
use Debconf::Db;
use Debconf::Question;
Debconf::Db->load(readonly => "true");
my $qi = Debconf::Question->iterator;
while (my $q = $qi->iterate) {
	my ($name, $type, $value) = ($q->name, $q->type, $q->value);
	next if (! length $type || $type eq 'text' || $type eq 'title');
	print "# ".$q->description."\n" if ($q->description);
	foreach my $owner (split ", ", $q->owners) {
		print "$owner\t$name\t$type\t$value\n";
	}
}
`
