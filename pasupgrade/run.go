package pasupgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/pasops/pasupgrade/runner"
)

// RunConfig is the mode of a Run: resume, dry run, events, confirmation.
type RunConfig struct {
	// Resume continues the run recorded in the work directory's journal
	// after its last completed step, instead of starting afresh.
	Resume bool
	// NewRun starts afresh although the journal records a run that did
	// not finish, moving that journal aside (see "Journal archives" in the
	// package documentation). It is for a node restored since, or a run
	// given up on purpose. A fresh run always moves a finished run's
	// journal aside.
	NewRun bool
	// DryRun runs every step against the recording wrappers of
	// DryRunDeps: reads reach the system, changes are reported as
	// EventWould events and not made. It takes no lock and writes no
	// journal.
	DryRun bool
	// NodeLock is the path of a lock file held for the whole run in
	// addition to the work directory's, so that two runs with different
	// work directories cannot change the same node at once. Empty means
	// only the work directory is locked. The CLI uses DefaultNodeLock.
	NodeLock string

	// ToolVersion is written to the journal.
	ToolVersion string
	// Events receives what happens. Nil drops the events.
	Events EventSink
	// Confirm is called once, after the preflight checks and before the
	// first change; an error aborts the run. Nil means no confirmation.
	// Dry runs do not call it.
	Confirm func(ctx context.Context, plan *Plan) error
	// Logger receives the start and end of every step and the errors a
	// run handles without returning them. Nil discards them.
	Logger *slog.Logger
}

// Summary is the report of a finished run.
type Summary struct {
	Kind   Kind   `json:"kind"`
	From   string `json:"from"`
	To     string `json:"to"`
	DryRun bool   `json:"dry_run,omitempty"`
	// Changed lists the steps that change the system and are done, in this
	// run or, for a resumed run, in an earlier one.
	Changed []string `json:"changed"`
	// Skipped lists the steps a resumed run found done.
	Skipped []string `json:"skipped,omitempty"`
	// Downtime is the time core was stopped or restarting, summed over
	// the steps that mark it (see Step.CoreStopped).
	Downtime time.Duration `json:"downtime_ns"`
	// Duration is the wall time of the whole run.
	Duration time.Duration `json:"duration_ns"`
	// Waited is the part of Duration spent waiting on the system:
	// commands, dpkg, the upgrade tool, the management API, systemd,
	// remote nodes and the confirmation prompt. The rest is the tool's
	// own work.
	Waited time.Duration `json:"waited_ns"`
	// BackupSet is the backup set made (upgrade) or used (restore).
	BackupSet string `json:"backup_set,omitempty"`
	// JournalPath is the journal's file; empty in a dry run.
	JournalPath string `json:"journal,omitempty"`
	// HashScheme is the admin password's hash scheme after an upgrade.
	HashScheme string `json:"hash_scheme,omitempty"`
	// Reapplied lists nodes that got a config apply for a failed reload.
	Reapplied []string `json:"reapplied,omitempty"`
	// Warnings are the dry run's step failures, which a real run would
	// not reach because earlier changes would be in place.
	Warnings []string `json:"warnings,omitempty"`
}

// StepError is the error a run returns when a step fails. It names the step,
// the backup set to restore from and the journal to resume from.
type StepError struct {
	Step StepInfo
	Err  error
	// OutputTail is the end of the step's command output, redacted.
	OutputTail  string
	BackupSet   string
	JournalPath string
	Kind        Kind
}

func (e *StepError) Error() string {
	msg := fmt.Sprintf("step %s (guide %s) failed: %v", e.Step.ID, e.Step.Section, e.Err)
	if e.BackupSet != "" {
		msg += "; backup set: " + e.BackupSet
	} else if e.Kind == KindUpgrade {
		msg += "; no backup set was made yet, so nothing was changed"
	}
	if e.JournalPath != "" {
		msg += "; journal: " + e.JournalPath
	}
	return msg
}

func (e *StepError) Unwrap() error { return e.Err }

// PreflightError is returned when a preflight check failed. Report holds
// every check's result.
type PreflightError struct {
	Report Report
}

func (e *PreflightError) Error() string {
	return fmt.Sprintf("%v: %s; fix them, or pass --ignore-check NAME to accept a failure",
		ErrPreflightFailed, strings.Join(e.Report.Failed(), ", "))
}

func (e *PreflightError) Unwrap() error { return ErrPreflightFailed }

// Run runs plan against deps: it takes the work directory's lock, runs the
// preflight checks (not when resuming a run that started a step), calls
// cfg.Confirm, and runs each step in order, writing the journal after every
// step. It stops at the first failing step and returns a *StepError. When
// ctx ends while a step runs that finishes anyway, the run stops before the
// next step and returns a *StepError for it that wraps ctx.Err(). A fresh
// run refuses, with ErrUnfinishedRun, a journal whose run started a step and
// did not finish. A finished run returns its summary,
// which is also sent as an EventSummary.
func Run(ctx context.Context, plan *Plan, deps Deps, cfg RunConfig) (*Summary, error) {
	if err := plan.Validate(); err != nil {
		return nil, fmt.Errorf("invalid plan: %w", err)
	}
	if cfg.Resume && cfg.NewRun {
		return nil, fmt.Errorf("%w: resume a run or start a new one, not both", ErrInvalidOptions)
	}
	if deps.Clock == nil {
		deps.Clock = SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &run{plan: plan, cfg: cfg, started: deps.Clock.Now(), meter: &waitMeter{clock: deps.Clock}}
	r.env = &Env{Deps: meteredDeps(deps, r.meter), Options: plan.Options, Path: plan.Path, State: &State{},
		Started: r.started, DryRun: cfg.DryRun, emit: r.emit}
	r.emit(Event{Kind: EventPlan, Plan: plan.Infos(), Total: len(plan.Steps)})

	if !cfg.DryRun {
		if cfg.NodeLock != "" {
			nodeLock, err := AcquireLockFile(cfg.NodeLock)
			if err != nil {
				return nil, fmt.Errorf("another upgrade or restore is running on this node: %w", err)
			}
			defer nodeLock.Release()
		}
		lock, err := AcquireLock(plan.Options.WorkDir)
		if err != nil {
			return nil, err
		}
		defer lock.Release()
	}
	if err := r.openJournal(ctx); err != nil {
		return nil, err
	}

	// A resumed run whose journal records no started step has changed
	// nothing yet, so it checks the node as a fresh run does.
	if !cfg.Resume || len(r.journal.Steps) == 0 {
		report := preflight(ctx, plan, r.env)
		if len(report.Failed()) > 0 {
			return nil, &PreflightError{Report: report}
		}
	}
	if cfg.Confirm != nil && !cfg.DryRun {
		r.emit(Event{Kind: EventPrompt, Message: "confirm before the first change"})
		endWait := r.meter.begin()
		err := cfg.Confirm(ctx, plan)
		endWait()
		if err != nil {
			return nil, err
		}
	}
	if cfg.DryRun {
		dry := DryRunDeps(deps, func(msg string) { r.emit(Event{Kind: EventWould, Message: msg}) })
		r.env.Deps = meteredDeps(dry, r.meter)
	}

	if err := r.steps(ctx); err != nil {
		return nil, err
	}
	return r.finish()
}

// run is the state of one Run call.
type run struct {
	plan    *Plan
	cfg     RunConfig
	env     *Env
	journal *Journal
	summary Summary
	started time.Time

	// meter measures this run's waits. waitedBefore is the time that
	// the earlier runs in the journal waited.
	meter        *waitMeter
	waitedBefore time.Duration
}

func (r *run) emit(ev Event) {
	if r.cfg.Events == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = r.env.Deps.Clock.Now()
	}
	r.cfg.Events(ev)
}

func (r *run) now() time.Time { return r.env.Deps.Clock.Now() }

// openJournal loads the journal to resume, or starts a new one. A new
// journal replaces a finished run's journal, or with NewRun an unfinished
// run's, only after moving it aside. The new journal is written before the
// preflight checks, so the old one must survive a run that fails them.
func (r *run) openJournal(ctx context.Context) error {
	dir := r.plan.Options.WorkDir
	if r.cfg.Resume {
		j, err := ReadJournal(dir)
		if err != nil {
			if !journalExists(dir) {
				return fmt.Errorf("%w in %s: start the run without --resume", ErrNoJournal, dir)
			}
			return err
		}
		if err := j.matches(r.plan); err != nil {
			return err
		}
		if j.Finished != nil {
			return fmt.Errorf("the run recorded in %s finished at %s: there is nothing to resume", j.path, j.Finished.Format(time.RFC3339))
		}
		if reason := r.staleReason(ctx, j); reason != "" {
			return fmt.Errorf("%w: %s; resuming would run the later steps on the wrong version: start a new run with --new-run, which keeps the old journal",
				ErrStaleJournal, reason)
		}
		r.journal = j
		r.waitedBefore = j.Waited
		*r.env.State = j.State
		return nil
	}
	if !r.cfg.DryRun && journalExists(dir) {
		old, err := ReadJournal(dir)
		if err != nil {
			return err
		}
		// A run killed between two steps leaves a journal whose steps
		// are all done: it is unfinished too, and replacing it would
		// lose the backup set and the way to resume.
		if old.Finished == nil && len(old.Steps) > 0 && !r.cfg.NewRun {
			return r.unfinishedError(ctx, old)
		}
		if len(old.Steps) > 0 {
			moved, err := old.archive()
			if err != nil {
				return err
			}
			r.cfg.Logger.Info("moved the earlier run's journal aside", "journal", moved, "finished", old.Finished != nil)
			r.emit(Event{Kind: EventInfo, Message: "the earlier run's journal is kept as " + moved})
		}
	}
	r.journal = &Journal{
		Format: journalFormat, Kind: r.plan.Kind, ToolVersion: r.cfg.ToolVersion,
		From: r.plan.Path.From, To: r.plan.Path.To, Options: r.plan.Options,
		Plan: r.plan.Infos(), Started: r.now(),
		path: filepath.Join(dir, JournalFile),
	}
	return r.save()
}

// unfinishedError returns the error that rejects a fresh run while old is
// unfinished, with the ways to go on.
func (r *run) unfinishedError(ctx context.Context, old *Journal) error {
	msg := fmt.Sprintf("the %s recorded in %s stopped %s", old.Kind, old.path, old.stoppedAt())
	switch reason := r.staleReason(ctx, old); {
	case reason != "":
		msg += "; " + reason + ": start a new run with --new-run, which keeps the old journal"
	case old.Kind == KindRestore:
		msg += "; resume it with --resume, or start over with --new-run"
	case old.State.BackupSet != "":
		msg += "; resume it with --resume, or restore from backup set " + old.State.BackupSet +
			", or start over with --new-run"
	default:
		msg += " before it made a backup set, so nothing was changed; resume it with --resume, or start over with --new-run"
	}
	return fmt.Errorf("%w: %s", ErrUnfinishedRun, msg)
}

// staleReason returns why journal j no longer describes the node, or ""
// when it may. An upgrade journal that records the packages installed
// is stale when every package is installed at the version the upgrade
// started from: the node was restored or downgraded since.
func (r *run) staleReason(ctx context.Context, j *Journal) string {
	if j.Kind != KindUpgrade {
		return ""
	}
	rec := j.record(StepInstall)
	if rec == nil || rec.Outcome != OutcomeDone || r.env.Deps.Packages == nil {
		return ""
	}
	installed, err := r.env.Deps.Packages.Installed(ctx, r.plan.Path.Packages)
	if err != nil || len(installed) != len(r.plan.Path.Packages) {
		return ""
	}
	for _, st := range installed {
		if !st.OK() || st.Version != j.From {
			return ""
		}
	}
	return fmt.Sprintf("it records the packages installed at %s, but they are at %s again, so the node was restored since",
		j.To, j.From)
}

func (r *run) save() error {
	if r.cfg.DryRun {
		return nil
	}
	r.journal.State = *r.env.State
	r.journal.Waited = r.waitedBefore + r.meter.waited()
	return r.journal.save()
}

// steps runs or skips every step in order. A resumed run skips the steps
// the journal records as done. The last of them runs its Done check first,
// and runs again when its work is gone.
func (r *run) steps(ctx context.Context) error {
	lastDone := ""
	if r.cfg.Resume {
		lastDone = r.journal.lastDone()
	}
	for i, step := range r.plan.Steps {
		rec := r.journal.record(step.ID)
		done := r.cfg.Resume && rec != nil && rec.Outcome == OutcomeDone
		if done && step.ID == lastDone && step.Done != nil {
			ok, err := step.Done(ctx, r.env)
			if err != nil || !ok {
				r.cfg.Logger.Warn("done check of the last completed step failed", "step", step.ID, "error", errOrNo(err))
				r.emit(Event{Kind: EventWarning, Message: fmt.Sprintf(
					"step %s is recorded as done but its check does not confirm it (%v): running it again",
					step.ID, errOrNo(err))})
				done = false
			}
		}
		if done && !step.Always {
			r.summary.Skipped = append(r.summary.Skipped, step.ID)
			r.emit(Event{Kind: EventStepSkipped, Step: ptr(step.Info()), Index: i + 1, Total: len(r.plan.Steps)})
			continue
		}
		if err := ctx.Err(); err != nil {
			return r.interrupted(step, err)
		}
		if err := r.step(ctx, i, step); err != nil {
			return err
		}
	}
	return nil
}

// interrupted returns the error of a run cancelled before step started,
// such as by Ctrl-C while the previous step waited on dpkg, which runs to
// its end. The journal does not record step, so a resumed run starts it.
func (r *run) interrupted(step Step, err error) error {
	return &StepError{
		Step: step.Info(), Err: fmt.Errorf("not started because the run was interrupted: %w", err),
		BackupSet: r.env.State.BackupSet, JournalPath: r.journal.path, Kind: r.plan.Kind,
	}
}

func errOrNo(err error) any {
	if err == nil {
		return "not in place"
	}
	return err
}

func ptr[T any](v T) *T { return &v }

// step runs one step and records it.
func (r *run) step(ctx context.Context, i int, step Step) error {
	info := step.Info()
	if r.cfg.DryRun && step.Changes == "" && !step.Always {
		r.emit(Event{Kind: EventWould, Step: &info, Message: "check: " + step.Action})
		return nil
	}
	start := r.now()
	rec := r.journal.record(step.ID)
	if rec == nil {
		r.journal.Steps = append(r.journal.Steps, StepRecord{ID: step.ID})
		rec = &r.journal.Steps[len(r.journal.Steps)-1]
	}
	*rec = StepRecord{ID: step.ID, Start: start, Outcome: OutcomeRunning}
	if err := r.save(); err != nil {
		return err
	}
	r.emit(Event{Kind: EventStepStart, Step: &info, Index: i + 1, Total: len(r.plan.Steps)})
	r.cfg.Logger.Debug("step started", "step", step.ID, "user", step.User, "dry_run", r.cfg.DryRun)
	r.coreDown(step, true, start)

	out := newStepOutput()
	r.env.output = out
	waited := r.meter.waited()
	err := step.Run(ctx, r.env)
	waited = r.meter.waited() - waited
	r.env.output = nil
	end := r.now()
	r.coreDown(step, false, end)

	rec = r.journal.record(step.ID)
	rec.End, rec.Output, rec.Outcome, rec.Waited = &end, out.digest(), OutcomeDone, waited
	if err != nil {
		rec.Outcome = OutcomeFailed
		rec.Error = r.redact(err.Error())
	}
	ev := Event{Kind: EventStepEnd, Step: &info, Index: i + 1, Total: len(r.plan.Steps),
		Outcome: rec.Outcome, Duration: end.Sub(start), Error: rec.Error}
	if saveErr := r.save(); saveErr != nil {
		err = errors.Join(err, saveErr)
	}
	r.cfg.Logger.Debug("step finished", "step", step.ID, "outcome", rec.Outcome, "duration", ev.Duration)
	r.emit(ev)
	if err != nil {
		if r.cfg.DryRun {
			msg := fmt.Sprintf("step %s: %s", step.ID, r.redact(err.Error()))
			r.cfg.Logger.Warn("step failed in a dry run", "step", step.ID, "error", r.redact(err.Error()))
			r.summary.Warnings = append(r.summary.Warnings, msg)
			r.emit(Event{Kind: EventWarning, Step: &info, Message: msg})
			return nil
		}
		return &StepError{
			Step: info, Err: redactedError{err, r.redact(err.Error())},
			OutputTail: out.tailText(r.secrets()), BackupSet: r.env.State.BackupSet,
			JournalPath: r.journal.path, Kind: r.plan.Kind,
		}
	}
	if step.Changes != "" {
		r.summary.Changed = append(r.summary.Changed, step.ID)
	}
	return nil
}

// coreDown tracks the time core is down. A window opens when a step marked
// CoreStopped starts. The step that stops core keeps it open for every
// later step, inserted ones too, until the step that starts core ends.
// Any other CoreStopped step, such as a restart, closes it when it ends.
func (r *run) coreDown(step Step, starting bool, at time.Time) {
	st := r.env.State
	switch {
	case starting:
		if step.CoreStopped && st.CoreDownSince == nil {
			st.CoreDownSince = &at
		}
	case st.CoreDownSince == nil || !step.CoreStopped:
	case step.ID == stepStopCore:
		st.CoreHeldDown = true
	case st.CoreHeldDown && step.ID != stepStartCore:
	default:
		st.Downtime += at.Sub(*st.CoreDownSince)
		st.CoreDownSince, st.CoreHeldDown = nil, false
	}
}

func (r *run) secrets() []string { return []string{r.plan.Options.AdminPassword} }

func (r *run) redact(s string) string { return runner.Redact(s, r.secrets()) }

// finish closes the journal and reports the summary.
func (r *run) finish() (*Summary, error) {
	end := r.now()
	if !r.cfg.DryRun {
		r.journal.Finished = &end
		if err := r.save(); err != nil {
			return nil, err
		}
		r.summary.JournalPath = r.journal.path
		r.summary.Changed = nil
		for _, step := range r.plan.Steps {
			rec := r.journal.record(step.ID)
			if step.Changes != "" && rec != nil && rec.Outcome == OutcomeDone {
				r.summary.Changed = append(r.summary.Changed, step.ID)
			}
		}
	}
	st := r.env.State
	s := &r.summary
	s.Kind, s.From, s.To, s.DryRun = r.plan.Kind, r.plan.Path.From, r.plan.Path.To, r.cfg.DryRun
	s.Downtime, s.Duration, s.Waited = st.Downtime, end.Sub(r.started), r.meter.waited()
	s.BackupSet, s.HashScheme, s.Reapplied = st.BackupSet, st.HashScheme, st.Reapplied
	r.emit(Event{Kind: EventSummary, Summary: s})
	return s, nil
}

// redactedError keeps the chain of err for errors.Is and errors.As while
// its text has the secrets removed.
type redactedError struct {
	err  error
	text string
}

func (e redactedError) Error() string { return e.text }
func (e redactedError) Unwrap() error { return e.err }
