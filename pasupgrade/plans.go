package pasupgrade

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// NewUpgradePlan returns the upgrade plan for opts: guide section 3 for a
// single node, section 4 for multi node, each preceded by the backup of
// section 2 and followed by the final checks. It fails with
// ErrInvalidOptions when opts are invalid.
func NewUpgradePlan(path UpgradePath, opts Options) (*Plan, error) {
	if err := path.Validate(); err != nil {
		return nil, err
	}
	if err := opts.Validate(false); err != nil {
		return nil, err
	}
	var steps []Step
	if opts.multi() {
		steps = multiUpgradeSteps(path, opts)
	} else {
		steps = singleUpgradeSteps(path, opts)
	}
	plan := &Plan{Kind: KindUpgrade, Path: path, Options: opts, Steps: steps}
	return plan, plan.Validate()
}

func singleUpgradeSteps(path UpgradePath, opts Options) []Step {
	steps := []Step{
		backupStep("2.1, 2.2"),
		preUpgradeStep("3.2.1", path),
		convertStep("3.2.2", path),
		installStep("3.2.3", path, opts),
		checkConvertedStep("3.2.5", path),
	}
	steps = append(steps, updateSteps("3.2.6", true)...)
	if !opts.KeepPEMModes {
		steps = append(steps, restrictPEMStep("3.2.7"))
	}
	steps = append(steps, checkconfigSteps("3.2.8")...)
	stop := serviceStep("stop", UnitCore, "3.2.10")
	stop.CoreStopped = true
	post := postUpgradeStep("3.2.11", path, opts)
	post.CoreStopped = true
	start := serviceStep("start", UnitCore, "3.2.12")
	start.CoreStopped = true
	return append(steps,
		serviceStep("restart", UnitMgmt, "3.2.9"),
		serviceStep("restart", UnitStorage, "3.2.9"),
		stop, post, start,
		verifyVersionsStep("3.1", path.To, false),
		reapplyStep("4.2.20"),
	)
}

func multiUpgradeSteps(path UpgradePath, opts Options) []Step {
	steps := []Step{
		backupStep("2.1, 2.2"),
		checkLocalStep(opts),
		checkRemoteStep(path),
		preUpgradeStep("4.2.3", path),
		convertStep("4.2.4", path),
		installStep("4.2.5", path, opts),
	}
	for _, f := range path.ComposeFiles {
		steps = append(steps, setImageTagStep("4.2.7", path, f))
	}
	steps = append(steps, checkConvertedStep("4.2.8", path), commonVarsStep("4.2.9", path))

	// pas-update migrates the configuration of the core package's
	// components, so it runs where core or HA runs on this node.
	steps = append(steps, updateSteps("4.2.10", opts.CoreOnMgmt || opts.HA)...)
	if !opts.KeepPEMModes {
		steps = append(steps, restrictPEMStep("4.2.11"))
	}
	steps = append(steps, checkconfigSteps("4.2.12")...)
	return append(steps, multiRestartSteps(path, opts)...)
}

// multiRestartSteps are the multi node upgrade from the restart of the
// local services (guide 4.2 step 13) to the final checks.
func multiRestartSteps(path UpgradePath, opts Options) []Step {
	steps := []Step{
		serviceStep("restart", UnitMgmt, "4.2.13"),
		serviceStep("restart", UnitStorage, "4.2.13"),
		coreDown(deployStep(StepDeployStorage, "Redeploy the remote nodes and restart their storage", "4.2.14",
			"restarts the remote core and storage at "+path.To, "--deploy-core", "--restart-storage")),
		postUpgradeStep("4.2.15", path, opts),
	}
	if opts.CoreOnMgmt {
		steps = append(steps, coreDown(serviceStep("restart", UnitCore, "4.2.16")))
	}
	if opts.HA {
		steps = append(steps, serviceStep("restart", UnitHA, "4.2.17"))
	}

	steps = append(steps, coreDown(deployStep(StepDeployCore, "Upgrade and restart the remote core", "4.2.18",
		"restarts the remote core at "+path.To, "--restart-core")))
	if opts.HA {
		steps = append(steps, deployStep(StepDeployHA, "Upgrade and restart the remote HA component", "4.2.19",
			"restarts the remote HA component", "--deploy-ha", "--restart-ha"))
	}
	return append(steps, verifyVersionsStep("4.1", path.To, true), reapplyStep("4.2.20"))
}

func coreDown(s Step) Step {
	s.CoreStopped = true
	return s
}

func updateSteps(section string, core bool) []Step {
	var steps []Step
	if core {
		steps = append(steps, commandStep("update-core", "Update the core component", section,
			"updates the core component's configuration", "pas-update"))
	}
	return append(steps,
		commandStep("update-mgmt", "Update the management component", section,
			"updates the management component's configuration", "pas-mgmt-update"),
		commandStep("update-storage", "Update the storage component", section,
			"updates the storage component's configuration", "pas-storage-update"),
	)
}

func checkconfigSteps(section string) []Step {
	return []Step{
		commandStep("checkconfig-mgmt", "Check the management configuration", section, "", "pas-mgmt-checkconfig"),
		commandStep("checkconfig-storage", "Check the storage configuration", section, "", "pas-storage-checkconfig"),
	}
}

// localUnits returns the local units of opts, in the guide's order. The
// guide restarts the local HA component whenever HA runs, because the core
// package that ships its unit is installed on the management node in every
// topology. Core itself runs there only with CoreOnMgmt.
func localUnits(opts Options) []string {
	units := []string{UnitMgmt, UnitStorage}
	if opts.localCore() {
		units = append(units, UnitCore)
	}
	if opts.HA {
		units = append(units, UnitHA)
	}
	return units
}

func checkLocalStep(opts Options) Step {
	units := localUnits(opts)
	return Step{
		ID: StepCheckLocal, Title: "Make sure the local PAS services are running",
		Section: "4.2.1", User: UserRoot,
		Action: "systemctl is-active " + strings.Join(units, " "),
		Run: func(ctx context.Context, e *Env) error {
			var stopped []string
			for _, unit := range units {
				active, err := e.Deps.Services.IsActive(ctx, unit)
				if err != nil {
					return fmt.Errorf("asking systemd about %s: %w", unit, err)
				}
				if !active {
					stopped = append(stopped, unit)
				}
			}
			if len(stopped) > 0 {
				return fmt.Errorf("%s not running: start them with systemctl start before upgrading", strings.Join(stopped, ", "))
			}
			return nil
		},
	}
}

func checkRemoteStep(path UpgradePath) Step {
	return Step{
		ID: StepCheckRemote, Title: "Make sure the remote storage and core components are running",
		Section: "4.2.2", User: UserRoot,
		Action: "GET the management API status",
		Run: func(ctx context.Context, e *Env) error {
			status, err := e.Deps.API.Status(ctx)
			if err != nil {
				return fmt.Errorf("reading the management API status: %w", err)
			}
			problems := componentProblems(status, e.Path.From, e.Options.HA)
			if !hasRemoteNode(status) {
				problems = append(problems, "the status lists no remote core node")
			}
			if len(problems) > 0 {
				return fmt.Errorf("the installation is not healthy at %s: %s", e.Path.From, strings.Join(problems, "; "))
			}
			return nil
		},
	}
}

// NewRestorePlan returns the restore plan of guide section 5 for opts. It
// verifies the backup set at opts.BackupDir and copies it aside first. Then
// it stops every PAS service and removes the packages and the pas user. It
// reinstalls the From packages from opts.DebDir, restores the bootstrap
// files as pas, starts the services and redeploys the remote nodes. Last,
// it uploads and applies the saved running configuration.
func NewRestorePlan(path UpgradePath, opts Options) (*Plan, error) {
	if err := path.Validate(); err != nil {
		return nil, err
	}
	if err := opts.Validate(true); err != nil {
		return nil, err
	}

	steps := []Step{copyBackupStep()}
	if opts.multi() {
		steps = append(steps, loadAccessStep())
	}
	steps = append(steps, restoreCleanupSteps(path, opts)...)
	steps = append(steps, reinstallStep(path, opts), restoreZipStep())
	steps = append(steps, restoreStartSteps(path, opts)...)
	steps = append(steps, importConfigStep(), applyConfigStep(),
		verifyVersionsStep("5.2", path.From, opts.multi()))

	plan := &Plan{Kind: KindRestore, Path: path, Options: opts, Steps: steps}
	return plan, plan.Validate()
}

// restoreCleanupSteps stop every PAS service on every node, purge the
// packages and remove the local pas user (guide 5.1).
func restoreCleanupSteps(path UpgradePath, opts Options) []Step {
	stopUnits := []string{UnitMgmt, UnitStorage}
	if opts.localCore() {
		stopUnits = slices.Insert(stopUnits, 0, UnitCore)
	}
	if opts.HA {
		stopUnits = slices.Insert(stopUnits, 0, UnitHA)
	}
	var steps []Step
	for _, unit := range stopUnits {
		steps = append(steps, serviceStep("stop", unit, "5.1.1"))
	}
	if opts.multi() {
		steps = append(steps, stopRemoteStep(opts.HA))
	}

	steps = append(steps, purgeStep(path))
	if opts.multi() {
		steps = append(steps, purgeRemoteStep(path))
	}
	return append(steps, removeUserStep())
}

// restoreStartSteps start the local services and redeploy the remote nodes
// (guide 5.2.1 items 2 to 4).
func restoreStartSteps(path UpgradePath, opts Options) []Step {
	var steps []Step
	for _, unit := range []string{UnitStorage, UnitMgmt} {
		steps = append(steps, serviceStep("start", unit, "5.2.1.2"))
	}
	if opts.localCore() {
		steps = append(steps, serviceStep("start", UnitCore, "5.2.1.2"))
	}
	if opts.HA {
		steps = append(steps, serviceStep("start", UnitHA, "5.2.1.2"))
	}
	if !opts.multi() {
		return steps
	}

	// The guide deploys the remote nodes with --deploy-core and --deploy-ha
	// alone. The restore stopped their services, and a deployment does not
	// start a stopped service, so the upgrade's restart flags are added.
	steps = append(steps, deployStep(StepDeployCore, "Deploy the remote core nodes", "5.2.1.3",
		"reinstalls and starts the remote core at "+path.From,
		"--deploy-core", "--restart-storage", "--restart-core"))
	if opts.HA {
		steps = append(steps, deployStep(StepDeployHA, "Start the remote HA component", "5.2.1.4",
			"starts the remote HA component", "--deploy-ha", "--restart-ha"))
	}
	return steps
}
