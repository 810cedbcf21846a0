package pasupgrade_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/pasupgrade"
	"github.com/pasops/pasupgrade/pasupgrade/pasupgradetest"
)

const (
	debDir   = "/srv/debs"
	password = "s3cret-Pa55"
)

var remoteHosts = []string{"core-1", "core-2"}

func options(topology pasupgrade.Topology, ha, coreOnMgmt bool) pasupgrade.Options {
	return pasupgrade.Options{
		Topology: topology, HA: ha, CoreOnMgmt: coreOnMgmt,
		WorkDir: "/work-dir-set-by-prepare", DebDir: debDir, AdminPassword: password,
	}
}

// newSystem returns a fake installation that matches opts.
func newSystem(t *testing.T, opts pasupgrade.Options) *pasupgradetest.System {
	var hosts []string
	if opts.Topology == pasupgrade.TopologyMulti {
		hosts = remoteHosts
	}
	sys := pasupgradetest.NewSystem(t, pasupgrade.Upgrade480To490, hosts...)
	if opts.Topology == pasupgrade.TopologyMulti && !opts.CoreOnMgmt {
		sys.Units[pasupgrade.UnitCore] = false
		if !opts.HA {
			// Neither core nor HA runs here, so the core package is not
			// installed either.
			delete(sys.Packages, pasupgrade.PackageCore)
			delete(sys.Files, "/opt/balasys/etc/infrastructure/pas/docker-compose.conf")
		}
	}
	if opts.HA {
		sys.Units[pasupgrade.UnitHA] = true
	}
	return sys
}

func clock() *pasupgradetest.Clock {
	return pasupgradetest.NewClock(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), time.Second)
}

func runPlan(t *testing.T, plan *pasupgrade.Plan, sys *pasupgradetest.System, cfg pasupgrade.RunConfig) (*pasupgrade.Summary, error) {
	t.Helper()
	deps := sys.Deps(clock(), pasupgrade.ConfigconvEditor{})
	return pasupgrade.Run(context.Background(), plan, deps, cfg)
}

const (
	installTo = "install proxedo-api-security_4.9.0_all.deb proxedo-api-security-mgmt_4.9.0_all.deb " +
		"proxedo-api-security-storage_4.9.0_all.deb answers "
	singleAnswers = "proxedo-api-security/overwrite-config=true,proxedo-api-security-mgmt/overwrite-config=true," +
		"proxedo-api-security-mgmt/admin-password=***,proxedo-api-security-storage/overwrite-config=true"
	multiAnswers = "proxedo-api-security/overwrite-config=false,proxedo-api-security-mgmt/overwrite-config=false," +
		"proxedo-api-security-mgmt/admin-password=***,proxedo-api-security-storage/overwrite-config=false"
	findPEM = "run[pas] find /opt/balasys/etc/storage/ -type f -name *.pem -exec chmod 600 {} +"
)

// The guide's order of changes for each topology, as the fake logs them.
var (
	singleUpgrade = []string{
		"backup create in /var/backups/pasupgrade multi=false",
		"api export running",
		"tool pre-upgrade as pas",
		"tool convert-config as pas",
		installTo + singleAnswers,
		"run[pas] pas-update",
		"run[pas] pas-mgmt-update",
		"run[pas] pas-storage-update",
		findPEM,
		"run[pas] pas-mgmt-checkconfig",
		"run[pas] pas-storage-checkconfig",
		"systemctl restart proxedo-api-security-mgmt",
		"systemctl restart proxedo-api-security-storage",
		"systemctl stop proxedo-api-security",
		"tool post-upgrade timeout=20s as pas",
		"systemctl start proxedo-api-security",
	}
	multiHead = []string{
		"backup create in /var/backups/pasupgrade multi=true",
		"api export running",
		"tool pre-upgrade as pas",
		"tool convert-config as pas",
		installTo + multiAnswers,
	}
	// multiHeadNoCore is multiHead on a management node without core and
	// HA, which carries no core package.
	multiHeadNoCore = append(slices.Clone(multiHead[:4]), "install proxedo-api-security-mgmt_4.9.0_all.deb "+
		"proxedo-api-security-storage_4.9.0_all.deb answers proxedo-api-security-mgmt/overwrite-config=false,"+
		"proxedo-api-security-mgmt/admin-password=***,proxedo-api-security-storage/overwrite-config=false")
	multiEdits = []string{
		"write /opt/balasys/etc/infrastructure/pas/docker-compose.conf owner=pas",
		"write /opt/balasys/etc/infrastructure/mgmt/docker-compose.conf owner=pas",
		"write /opt/balasys/etc/infrastructure/storage/docker-compose.conf owner=pas",
		"write /opt/balasys/etc/automation/common_vars.yml owner=pas",
	}
	multiTail = []string{
		"run[pas] pas-mgmt-update",
		"run[pas] pas-storage-update",
		findPEM,
		"run[pas] pas-mgmt-checkconfig",
		"run[pas] pas-storage-checkconfig",
		"systemctl restart proxedo-api-security-mgmt",
		"systemctl restart proxedo-api-security-storage",
		"run[pas] pas-mgmt-deploy-core --deploy-core --restart-storage",
		"tool post-upgrade timeout=20s as pas",
	}
)

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func restoreSteps(multi, ha, coreOnMgmt bool) []string {
	reinstall := "install proxedo-api-security_4.8.0_all.deb proxedo-api-security-mgmt_4.8.0_all.deb proxedo-api-security-storage_4.8.0_all.deb"
	if multi && !ha && !coreOnMgmt {
		reinstall = "install proxedo-api-security-mgmt_4.8.0_all.deb proxedo-api-security-storage_4.8.0_all.deb"
	}
	const set = "/var/backups/pasupgrade/set-7"
	const copied = set + ".restore-20261204T100000Z"
	log := []string{"backup copy " + set + " to " + copied}
	if ha {
		log = append(log, "systemctl stop proxedo-api-security-ha")
	}
	if !multi || coreOnMgmt {
		log = append(log, "systemctl stop proxedo-api-security")
	}
	log = append(log,
		"systemctl stop proxedo-api-security-mgmt",
		"systemctl stop proxedo-api-security-storage",
	)
	if multi {
		units := "proxedo-api-security proxedo-api-security-storage"
		if ha {
			units = "proxedo-api-security-ha " + units
		}
		for _, h := range remoteHosts {
			log = append(log, "ssh "+h+" [root] systemctl stop "+units)
		}
	}
	log = append(log, "purge proxedo-api-security proxedo-api-security-mgmt proxedo-api-security-storage")
	if multi {
		for _, h := range remoteHosts {
			log = append(log, "ssh "+h+" [root] dpkg --purge proxedo-api-security proxedo-api-security-storage")
		}
	}
	log = append(log,
		"run[root] userdel --force --remove pas",
		reinstall,
		"backup restore "+copied+" as pas",
		"systemctl start proxedo-api-security-storage",
		"systemctl start proxedo-api-security-mgmt",
	)
	if !multi || coreOnMgmt {
		log = append(log, "systemctl start proxedo-api-security")
	}
	if ha {
		log = append(log, "systemctl start proxedo-api-security-ha")
	}
	if multi {
		log = append(log, "run[pas] pas-mgmt-deploy-core --deploy-core --restart-storage --restart-core")
		if ha {
			log = append(log, "run[pas] pas-mgmt-deploy-core --deploy-ha --restart-ha")
		}
	}
	return append(log, "api import running-config.yaml", "api apply timeout=20s")
}

type planCase struct {
	name    string
	opts    pasupgrade.Options
	restore bool
	want    []string
}

func planCases() []planCase {
	single := options(pasupgrade.TopologySingle, false, false)
	multi := options(pasupgrade.TopologyMulti, false, false)
	multiCore := options(pasupgrade.TopologyMulti, false, true)
	multiHA := options(pasupgrade.TopologyMulti, true, false)
	multiHACore := options(pasupgrade.TopologyMulti, true, true)
	restore := func(o pasupgrade.Options) pasupgrade.Options {
		o.BackupDir = "/var/backups/pasupgrade/set-7"
		return o
	}
	return []planCase{
		{name: "single node", opts: single, want: singleUpgrade},
		{name: "multi node", opts: multi, want: concat(multiHeadNoCore, multiEdits[1:], multiTail, []string{
			"run[pas] pas-mgmt-deploy-core --restart-core",
		})},
		{name: "multi node with core on mgmt", opts: multiCore, want: concat(multiHead, multiEdits,
			[]string{"run[pas] pas-update"}, multiTail, []string{
				"systemctl restart proxedo-api-security",
				"run[pas] pas-mgmt-deploy-core --restart-core",
			})},
		{name: "multi node with HA", opts: multiHA, want: concat(multiHead, multiEdits,
			[]string{"run[pas] pas-update"}, multiTail, []string{
				"systemctl restart proxedo-api-security-ha",
				"run[pas] pas-mgmt-deploy-core --restart-core",
				"run[pas] pas-mgmt-deploy-core --deploy-ha --restart-ha",
			})},
		{name: "multi node with HA and core on mgmt", opts: multiHACore, want: concat(multiHead, multiEdits,
			[]string{"run[pas] pas-update"}, multiTail, []string{
				"systemctl restart proxedo-api-security",
				"systemctl restart proxedo-api-security-ha",
				"run[pas] pas-mgmt-deploy-core --restart-core",
				"run[pas] pas-mgmt-deploy-core --deploy-ha --restart-ha",
			})},
		{name: "restore single node", opts: restore(single), restore: true, want: restoreSteps(false, false, false)},
		{name: "restore multi node", opts: restore(multi), restore: true, want: restoreSteps(true, false, false)},
		{name: "restore multi node with HA and core on mgmt", opts: restore(multiHACore), restore: true,
			want: restoreSteps(true, true, true)},
		{name: "restore multi node with HA", opts: restore(multiHA), restore: true,
			want: restoreSteps(true, true, false)},
	}
}

// prepare returns the plan and a fake system in the state the plan starts
// from: 4.8.0 for an upgrade, a finished 4.9.0 upgrade for a restore.
func prepare(t *testing.T, tc planCase) (*pasupgrade.Plan, *pasupgradetest.System) {
	t.Helper()
	tc.opts.WorkDir = t.TempDir()
	sys := newSystem(t, tc.opts)
	if !tc.restore {
		plan, err := pasupgrade.NewUpgradePlan(pasupgrade.Upgrade480To490, tc.opts)
		require.NoError(t, err)
		return plan, sys
	}
	sys.AddBackupSet(tc.opts.BackupDir)
	for _, p := range pasupgrade.Upgrade480To490.Packages {
		sys.Packages[p] = pasupgrade.PackageStatus{Version: "4.9.0", Status: "installed"}
	}
	plan, err := pasupgrade.NewRestorePlan(pasupgrade.Upgrade480To490, tc.opts)
	require.NoError(t, err)
	return plan, sys
}

func TestPlansFollowGuideOrder(t *testing.T) {
	for _, tc := range planCases() {
		t.Run(tc.name, func(t *testing.T) {
			plan, sys := prepare(t, tc)
			sys.Expect(tc.want...)

			summary, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
			require.NoError(t, err)

			want := pasupgrade.Upgrade480To490.To
			if tc.restore {
				want = pasupgrade.Upgrade480To490.From
			}
			for _, p := range pasupgrade.Upgrade480To490.LocalPackages(tc.opts) {
				assert.Equal(t, want, sys.Packages[p].Version, p)
			}
			for host, v := range sys.Remote {
				assert.Equal(t, want, v, "remote node %s", host)
			}
			assert.NotEmpty(t, summary.BackupSet)
			assert.Equal(t, plan.Options.WorkDir+"/"+pasupgrade.JournalFile, summary.JournalPath)
		})
	}
}
