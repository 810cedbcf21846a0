// Package pasupgrade upgrades a Proxedo API Security (PAS) installation from
// 4.8.0 to 4.9.0, and restores the 4.8.0 state, by running the vendor's
// upgrade guide as a plan of typed steps.
//
// # Plans
//
// A Plan is the guide for one topology as an ordered list of Steps.
// NewUpgradePlan builds the single node plan (guide section 3) or the multi
// node plan (section 4, with the options HA and core on the management
// node). Both start with a verified backup set (section 2). Both end with
// the final checks: every package and component at the new version, a
// config apply for any node whose reload success is FAILED (section 4.2
// step 20), and the admin password's hash scheme. NewRestorePlan builds the restore of
// section 5 for either topology.
//
// Every Step carries its id, the guide section it implements, the user it
// runs as (root or pas), the command, file edit or API call it runs, what
// it changes, whether core is down while it runs, and a Done check that reports
// to a resumed run whether its work is still in place. The names, versions,
// files and installer answers of the upgrade come from one UpgradePath value,
// Upgrade480To490; a later upgrade is a new value, not a new plan.
//
// Callers add their own steps with Plan.InsertBefore and Plan.InsertAfter,
// naming a step by its id (the Step* constants, or "pasupgrade-cli plan").
// A slow step is rejected between "stop-core" and "start-core".
//
// # Running
//
// Run takes the work directory's lock, runs the preflight checks (Preflight,
// also callable alone), asks RunConfig.Confirm, and then runs each step,
// reporting Events to RunConfig.Events. After every step it replaces the
// journal (JournalFile in the work directory) atomically: the plan, the
// tool version, the options without the password, the backup set, and for
// every step its start, end, outcome and a digest of its output. A failed
// step stops the run with a *StepError that names the step, the backup set
// and the journal. RunConfig.Resume continues after the last completed step;
// that step's Done check runs first, and the step runs again when its work
// is gone. Steps are safe to repeat, so a step that was interrupted midway
// simply runs again. A run without Resume fails with ErrUnfinishedRun while
// the journal records an unfinished run, even one killed between two steps,
// so that its backup set stays recorded.
//
// # Journal archives
//
// A fresh run moves a finished run's journal aside, renamed with the time
// that run started (pasupgrade-journal-20261204T181500Z.json), before it
// writes its own. RunConfig.NewRun does the same for an unfinished run's
// journal. A resumed upgrade fails with ErrStaleJournal when its journal
// records the packages installed but the node has them at the version the
// upgrade started from again, as after a restore: its later steps would
// run on the wrong version. Each step's record also contains the time it
// waited on the node (StepRecord.Waited), which separates the tool's own
// share of a run's time from the waits.
//
// RunConfig.DryRun runs the same steps against DryRunDeps: reads reach the
// node, changes are reported as EventWould lines (file edits with a line
// diff) and not made.
//
// # Dependencies
//
// Steps reach the node only through Deps: a runner.Runner for commands
// (steps the guide runs as pas run with Command.User "pas"), a
// PackageManager, the UpgradeTool, the ManagementAPI, a ServiceManager
// (Systemctl), RemoteNodes (pas-mgmt-deploy-core and SSH with the pas key),
// a FileSystem, a ConfigEditor, a BackupStore and a Clock. The adapters in
// this package connect them to the deb, configconv, mgmtapi and backup
// packages: DebPackages, ConfigconvTool, MgmtAPI, BackupSets, OSFiles,
// ConfigconvEditor and Remote. Package pasupgradetest fakes all of them
// with one simulated node whose log of changes tests compare with the
// guide's order.
//
// The admin password is in Options.AdminPassword only. It reaches the
// installer and the upgrade tool on stdin, and it is redacted from command
// output, errors, events and the journal.
package pasupgrade
