package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pasops/pasupgrade/pasupgrade"
)

func init() { register(newPreflightCmd) }

func newPreflightCmd(a *app) *cobra.Command {
	var (
		f       planFlags
		restore bool
	)
	cmd := &cobra.Command{
		Use:   "preflight [--restore --backup DIR]",
		Short: "Check that the node is ready for the upgrade (or the restore)",
		Long: `preflight runs the checks that upgrade runs before its first change and
prints each as PASS, WARN or FAIL with the fix. It changes nothing, except
that a missing upgrade tool image is pulled, so that no pull happens while
the core component is stopped. It exits with code 3 when a check fails;
--ignore-check NAME turns that check's failure into a warning.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, err := f.buildPlan(cmd, a, restore)
			if err != nil {
				return err
			}
			deps, closeDeps, err := newDeps(cmd.Context(), a, &f, plan)
			if err != nil {
				return err
			}
			defer closeDeps()
			view := newEventView(a, 0)
			report := pasupgrade.Preflight(cmd.Context(), plan, deps, view.render, f.dryRun)
			if failed := report.Failed(); len(failed) > 0 {
				return withExitCode(exitCheckFailed, &pasupgrade.PreflightError{Report: report})
			}
			a.printer.Event("preflight_passed", "every check passed", map[string]int{"checks": len(report.Results)})
			return nil
		},
	}
	addPlanFlags(cmd, &f, false)
	addRestoreFlags(cmd, &f, &restore, "run the restore's checks instead of the upgrade's")
	return cmd
}

// eventView renders the library's events: text lines (and a progress bar
// on a terminal), or one JSON line per event with --json.
type eventView struct {
	a     *app
	total int
	bar   progress
	done  int64
}

func newEventView(a *app, total int) *eventView {
	v := &eventView{a: a, total: total, bar: noProgress{}}
	if total > 0 {
		v.bar = a.printer.Progress("steps", int64(total), false)
	}
	return v
}

func (v *eventView) finish() { v.bar.Finish() }

func (v *eventView) render(ev pasupgrade.Event) {
	p := v.a.printer
	if v.a.json {
		p.Event(string(ev.Kind), "", ev)
		return
	}
	switch ev.Kind {
	case pasupgrade.EventPlan:
		p.Infof("plan: %d steps", len(ev.Plan))
	case pasupgrade.EventCheck:
		p.Event("check", checkLine(*ev.Check), nil)
	case pasupgrade.EventStepStart:
		who := ev.Step.User
		p.Event("step_start", fmt.Sprintf("[%d/%d] %s (guide %s, as %s)", ev.Index, ev.Total, ev.Step.Title, ev.Step.Section, who), nil)
	case pasupgrade.EventStepEnd:
		v.done++
		v.bar.Set(v.done)
		if ev.Outcome == pasupgrade.OutcomeDone {
			p.Event("step_end", fmt.Sprintf("      done in %s", ev.Duration.Round(time.Millisecond)), nil)
		} else {
			p.Event("step_end", fmt.Sprintf("      FAILED after %s: %s", ev.Duration.Round(time.Millisecond), ev.Error), nil)
		}
	case pasupgrade.EventStepSkipped:
		v.done++
		v.bar.Set(v.done)
		p.Event("step_skipped", fmt.Sprintf("[%d/%d] %s: already done", ev.Index, ev.Total, ev.Step.ID), nil)
	case pasupgrade.EventWould:
		p.Event("would", "would "+ev.Message, nil)
	case pasupgrade.EventInfo:
		p.Infof("      %s", ev.Message)
	case pasupgrade.EventWarning:
		p.Warnf("%s", ev.Message)
	case pasupgrade.EventSummary:
		p.Event("summary", summaryText(ev.Summary), nil)
	}
}

func checkLine(c pasupgrade.CheckResult) string {
	line := fmt.Sprintf("%-4s  %-14s  %s", c.Status, c.Name, c.Message)
	if c.Ignored {
		line += " (ignored with --ignore-check)"
	}
	if c.Fix != "" && c.Status != pasupgrade.CheckPass {
		line += "\n      fix: " + c.Fix
	}
	return line
}

func summaryText(s *pasupgrade.Summary) string {
	var b strings.Builder
	verb := "finished"
	if s.DryRun {
		verb = "dry run finished; nothing was changed"
	}
	fmt.Fprintf(&b, "%s from %s to %s %s in %s\n", s.Kind, s.From, s.To, verb, s.Duration.Round(time.Second))
	if s.Kind == pasupgrade.KindRestore {
		b.Reset()
		fmt.Fprintf(&b, "restore to %s %s in %s\n", s.From, verb, s.Duration.Round(time.Second))
	}
	changed := "  changed:     "
	switch {
	case s.DryRun:
		changed = "  would change: "
	case len(s.Skipped) > 0:
		// A resumed run's Changed also holds the earlier runs' changes.
		changed = "  changed (this and earlier runs): "
	}
	fmt.Fprintf(&b, "%s%s\n", changed, strings.Join(s.Changed, ", "))
	if len(s.Skipped) > 0 {
		fmt.Fprintf(&b, "  already done before this run: %s\n", strings.Join(s.Skipped, ", "))
	}
	if s.Kind == pasupgrade.KindUpgrade {
		fmt.Fprintf(&b, "  core down:   %s\n", s.Downtime.Round(time.Millisecond))
	}
	if !s.DryRun {
		fmt.Fprintf(&b, "  own work:    %s; the rest waited on commands, dpkg, containers, the API and systemd\n",
			(s.Duration - s.Waited).Round(time.Millisecond))
	}
	if s.HashScheme != "" {
		fmt.Fprintf(&b, "  admin password hash: %s\n", s.HashScheme)
	}
	if len(s.Reapplied) > 0 {
		fmt.Fprintf(&b, "  config applied again for: %s\n", strings.Join(s.Reapplied, ", "))
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(&b, "  warning: %s\n", w)
	}
	if s.BackupSet != "" {
		fmt.Fprintf(&b, "  backup set:  %s\n", s.BackupSet)
	}
	if s.JournalPath != "" {
		fmt.Fprintf(&b, "  journal:     %s\n", s.JournalPath)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
