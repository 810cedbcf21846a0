package deb

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/runner"
	"github.com/pasops/pasupgrade/runner/runnertest"
)

func TestRemove(t *testing.T) {
	tests := []struct {
		name        string
		purge       bool
		before      string
		wantArgv    []string
		after       string
		wantRemoved []string
		wantSkipped []string
	}{
		{
			name:        "purge skips packages that are not installed",
			purge:       true,
			before:      CorePackage + "\tii \t4.9.0\n" + MgmtPackage + "\trc \t4.9.0\n",
			wantArgv:    []string{"apt-get", "remove", "--yes", "--purge", CorePackage, MgmtPackage},
			after:       "",
			wantRemoved: []string{CorePackage, MgmtPackage},
			wantSkipped: []string{StoragePackage},
		},
		{
			name:        "broken package purged with dpkg",
			purge:       true,
			before:      CorePackage + "\tii \t4.9.0\n" + MgmtPackage + "\tiU \t4.9.0\n",
			wantArgv:    []string{"dpkg", "--purge", CorePackage, MgmtPackage},
			after:       "",
			wantRemoved: []string{CorePackage, MgmtPackage},
			wantSkipped: []string{StoragePackage},
		},
		{
			name:        "remove leaves config files alone",
			before:      CorePackage + "\tii \t4.9.0\n" + MgmtPackage + "\trc \t4.9.0\n" + StoragePackage + "\tiF \t4.9.0\n",
			wantArgv:    []string{"dpkg", "--remove", CorePackage, StoragePackage},
			after:       CorePackage + "\trc \t4.9.0\n" + StoragePackage + "\trc \t4.9.0\n",
			wantRemoved: []string{CorePackage, StoragePackage},
			wantSkipped: []string{MgmtPackage},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := runnertest.New(t)
			fake.Expect(queryArgv...).Exit(1).Stdout(tt.before)
			fake.Expect(tt.wantArgv...)
			fake.Expect(append(queryArgv[:3:3], tt.wantRemoved...)...).Exit(1).Stdout(tt.after)
			m := &Manager{Runner: fake}
			events := recordEvents(m)

			result, err := m.Remove(context.Background(), SetNames(), tt.purge)

			require.NoError(t, err)
			assert.Equal(t, tt.wantRemoved, result.Removed)
			assert.Equal(t, tt.wantSkipped, result.Skipped)
			apt := fake.Calls()[1]
			assert.Equal(t, []string{"DEBIAN_FRONTEND=noninteractive"}, apt.Env)
			assert.Nil(t, apt.Stdin)
			assert.Contains(t, kinds(*events), EventSkip)
			assert.Contains(t, kinds(*events), EventRemove)
		})
	}
}

func TestRemoveNothingInstalled(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect(queryArgv...).Exit(1)
	m := &Manager{Runner: fake}

	result, err := m.Remove(context.Background(), SetNames(), true)

	require.NoError(t, err)
	assert.Empty(t, result.Removed)
	assert.Equal(t, SetNames(), result.Skipped)
}

func TestRemoveLeavesPackageBehind(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect(queryArgv[:4]...).Stdout(CorePackage + "\tii \t4.9.0\n")
	fake.Expect("apt-get", "remove", "--yes", "--purge", CorePackage)
	fake.Expect(queryArgv[:4]...).Stdout(CorePackage + "\trc \t4.9.0\n")
	m := &Manager{Runner: fake}

	_, err := m.Remove(context.Background(), []string{CorePackage}, true)

	assert.ErrorContains(t, err, "apt-get reported success but left proxedo-api-security config-files at 4.9.0")
}

// Case: Ctrl-C while apt-get purges, which goes on to its end. The purge
// is checked and reported as done, not failed on the cancelled context.
func TestRemoveChecksAfterCancelDuringPurge(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fake := runnertest.New(t)
	fake.Expect(queryArgv[:4]...).Stdout(CorePackage + "\tii \t4.9.0\n")
	fake.Expect("apt-get", "remove", "--yes", "--purge", CorePackage).Do(func(runner.Command) (runner.Result, error) {
		cancel()
		return runner.Result{}, nil
	})
	fake.Expect(queryArgv[:4]...).Exit(1)
	m := &Manager{Runner: fake}

	result, err := m.Remove(ctx, []string{CorePackage}, true)

	require.NoError(t, err)
	assert.Equal(t, []string{CorePackage}, result.Removed)
}
