package deb

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/runner"
	"github.com/pasops/pasupgrade/runner/runnertest"
)

// redactedStdout replies with out as the real runners do: with every
// secret of the command replaced by "***".
func redactedStdout(out string) func(runner.Command) (runner.Result, error) {
	return func(cmd runner.Command) (runner.Result, error) {
		return runner.Result{Stdout: []byte(runner.Redact(out, cmd.Secrets))}, nil
	}
}

// A password that is also part of a question name or an answer, such as
// "admin" in ".../admin-password" or "true", is redacted there too. The
// answers must still be confirmed and the password found cleared.
func TestInstallPasswordInsideOtherWords(t *testing.T) {
	for _, password := range []string{"admin", "true", "password", "security", "e"} {
		t.Run(password, func(t *testing.T) {
			fake := runnertest.New(t)
			fake.Expect("debconf-set-selections")
			fake.Expect("debconf-get-selections").Do(redactedStdout(selectionsOutput("true", password)))
			expectUpgrade(fake)
			fake.Expect("debconf-set-selections")
			fake.Expect("debconf-get-selections").Do(redactedStdout(selectionsOutput("true", "")))
			m := &Manager{Runner: fake}

			_, err := m.Install(context.Background(), testSet(),
				InstallOptions{OverwriteConfig: true, AdminPassword: password})

			require.NoError(t, err)
		})
	}
}

// A password left in the database is found even when it is also part of
// the question's name.
func TestInstallFindsPasswordInsideQuestionName(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Do(redactedStdout(selectionsOutput("true", "admin")))
	expectUpgrade(fake)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Do(redactedStdout(selectionsOutput("true", "admin")))
	m := &Manager{Runner: fake}

	_, err := m.Install(context.Background(), testSet(),
		InstallOptions{OverwriteConfig: true, AdminPassword: "admin"})

	require.Error(t, err)
	assert.Contains(t, err.Error(), "still holds an answer to "+AdminPasswordQuestion)
}

// dpkg runs the maintainer scripts that read the password, so its output
// is redacted too: in the result, the error tail and the live output.
func TestInstallRedactsPasswordInDpkgOutput(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Stdout(selectionsOutput("true", "***"))
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.8.0"))
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist)
	fake.Expect(installArgv...)
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist)
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.9.0"))
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Stdout(selectionsOutput("true", ""))
	m := &Manager{Runner: fake}

	_, err := m.Install(context.Background(), testSet(),
		InstallOptions{OverwriteConfig: true, AdminPassword: testPassword})

	require.NoError(t, err)
	for _, c := range fake.Calls() {
		if c.Argv[0] == "dpkg" {
			assert.Contains(t, c.Secrets, testPassword, "%s must redact the password", strings.Join(c.Argv, " "))
		}
	}
}
