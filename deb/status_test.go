package deb

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pault.ag/go/debian/version"

	"github.com/pasops/pasupgrade/runner/runnertest"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		abbrev      string
		wantState   State
		wantDetail  string
		wantRepair  string
		wantPending bool
	}{
		{"ii ", StateInstalled, "installed", "", false},
		{"hi ", StateInstalled, "installed", "", false},
		{"rc ", StateConfigFiles, "config-files", "", false},
		{"un ", StateNotInstalled, "not-installed", "", false},
		{"pn ", StateNotInstalled, "not-installed", "", false},
		{"iU ", StateBroken, "unpacked", "dpkg --force-confdef --force-confold --configure -a", true},
		{"iF ", StateBroken, "half-configured", "dpkg --force-confdef --force-confold --configure -a", true},
		{"iW ", StateBroken, "triggers-awaited", "dpkg --force-confdef --force-confold --configure -a", true},
		{"it ", StateBroken, "triggers-pending", "dpkg --force-confdef --force-confold --configure -a", true},
		{"iH ", StateBroken, "half-installed, reinstall required",
			"dpkg --install proxedo-api-security-mgmt_<version>_all.deb (or dpkg --purge --force-remove-reinstreq proxedo-api-security-mgmt)", false},
		{"iiR", StateBroken, "installed, reinstall required",
			"dpkg --install proxedo-api-security-mgmt_<version>_all.deb (or dpkg --purge --force-remove-reinstreq proxedo-api-security-mgmt)", false},
	}
	for _, tt := range tests {
		t.Run(tt.abbrev, func(t *testing.T) {
			st, err := parseStatus(MgmtPackage, tt.abbrev, "4.9.0")

			require.NoError(t, err)
			assert.Equal(t, tt.wantState, st.State)
			assert.Equal(t, tt.wantDetail, st.Detail)
			assert.Equal(t, tt.wantRepair, st.Repair)
			assert.Equal(t, tt.wantPending, st.needsConfigure())
			assert.Equal(t, tt.wantState == StateInstalled, st.Installed())
		})
	}
}

func TestParseStatusInvalid(t *testing.T) {
	for _, abbrev := range []string{"", "i", "iX "} {
		_, err := parseStatus(CorePackage, abbrev, "")

		assert.ErrorContains(t, err, "proxedo-api-security has", "abbrev %q", abbrev)
	}
}

func TestInstalledUnknownPackages(t *testing.T) {
	fake := runnertest.New(t)
	// dpkg-query lists the packages in its database and exits 1 for the others.
	fake.Expect(queryArgv...).Exit(1).
		Stdout(MgmtPackage + "\trc \t4.8.0\n").
		Stderr("dpkg-query: no packages found matching proxedo-api-security\n")
	m := &Manager{Runner: fake}

	statuses, err := m.Installed(context.Background(), SetNames()...)

	require.NoError(t, err)
	require.Len(t, statuses, 3)
	assert.Equal(t, Status{Name: CorePackage, State: StateNotInstalled, Abbrev: "un", Detail: "not-installed"}, statuses[0])
	assert.Equal(t, StateConfigFiles, statuses[1].State)
	assert.False(t, statuses[1].Installed(), "removed but not purged is not installed")
	assert.True(t, statuses[1].Present())
	assert.Equal(t, "4.8.0", statuses[1].Version)
	assert.Equal(t, StateNotInstalled, statuses[2].State)
}

func TestInstalledFailures(t *testing.T) {
	tests := []struct {
		name   string
		exit   int
		stdout string
		want   string
	}{
		{"database unreadable", 2, "", "querying the package database"},
		{"unexpected output", 0, "garbage\n", `unexpected line "garbage"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := runnertest.New(t)
			fake.Expect(queryArgv...).Exit(tt.exit).Stdout(tt.stdout)
			m := &Manager{Runner: fake}

			_, err := m.Installed(context.Background(), SetNames()...)

			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestInstalledAdminDir(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("dpkg-query", "--admindir=/mnt/node/var/lib/dpkg", "--show", "--showformat="+queryFormat, CorePackage).
		Stdout(CorePackage + "\tii \t1:4.9.0\n")
	m := &Manager{Runner: fake, AdminDir: "/mnt/node/var/lib/dpkg"}

	statuses, err := m.Installed(context.Background(), CorePackage)

	require.NoError(t, err)
	want, _ := version.Parse("1:4.9.0")
	plain, _ := version.Parse("4.9.0")
	assert.True(t, statuses[0].IsVersion(want))
	assert.False(t, statuses[0].IsVersion(plain), "an epoch makes a different version")
}

// Versions are ordered by Debian's rules, which differ from semver.
func TestVersionOrder(t *testing.T) {
	tests := []struct{ lower, higher string }{
		{"4.9.0~rc1", "4.9.0"},
		{"4.9.0", "4.9.0-1"},
		{"4.9.0", "4.10.0"},
		{"4.9.0+hotfix1", "4.9.1"},
		{"4.9.0", "1:4.8.0"},
		{"4.9.0-2", "4.9.0-10"},
	}
	for _, tt := range tests {
		t.Run(tt.lower+" < "+tt.higher, func(t *testing.T) {
			lower, err := version.Parse(tt.lower)
			require.NoError(t, err)
			higher, err := version.Parse(tt.higher)
			require.NoError(t, err)

			assert.Negative(t, version.Compare(lower, higher))
		})
	}
}
