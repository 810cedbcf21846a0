package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/internal/lab"
	"github.com/pasops/pasupgrade/pasupgrade"
)

// Environment of the downtime benchmark, which bench/downtime.sh sets.
const (
	// benchRunsEnv is the number of upgrades to measure; unset skips the
	// benchmark.
	benchRunsEnv = "PASUPGRADE_BENCH_RUNS"
	// benchOutEnv names a file that receives one JSON line per run.
	benchOutEnv = "PASUPGRADE_BENCH_OUT"
)

// downtimeRun is what one measured upgrade gives.
type downtimeRun struct {
	// ProbeGap is the longest time without a 200 response to the prober.
	ProbeGap time.Duration `json:"probe_gap_ns"`
	// ProbeFailures and ProbeRequests count the prober's requests.
	ProbeFailures int `json:"probe_failures"`
	ProbeRequests int `json:"probe_requests"`
	// ReportedDowntime is the downtime the CLI's summary reports.
	ReportedDowntime time.Duration `json:"reported_downtime_ns"`
	// PostUpgrade is the journal's duration of the post-upgrade step: the
	// upgrade tool's own run time, which the guide puts inside the window.
	PostUpgrade time.Duration `json:"post_upgrade_ns"`
	// Wall is the journal's time from its start, before the preflight
	// checks, to its end.
	Wall time.Duration `json:"wall_ns"`
	// Waited is the journal's time spent waiting on commands, dpkg, the
	// upgrade tool's containers, the management API and systemd.
	Waited time.Duration `json:"waited_ns"`
	// Overhead is Wall minus Waited: the tool's own work.
	Overhead time.Duration `json:"overhead_ns"`
	// OwnByStep is each step's own work, and under "(outside steps)" the
	// preflight checks, journal writes and events between steps.
	OwnByStep map[string]time.Duration `json:"own_by_step_ns"`
}

// outsideSteps is the key of OwnByStep for the work between steps.
const outsideSteps = "(outside steps)"

// measureJournal fills the journal's figures into r.
func measureJournal(r *downtimeRun, j *pasupgrade.Journal) error {
	if j.Finished == nil {
		return fmt.Errorf("the journal has no end time")
	}
	r.Wall = j.Finished.Sub(j.Started)
	r.Waited = j.Waited
	r.Overhead = r.Wall - r.Waited
	r.OwnByStep = map[string]time.Duration{}
	outside := r.Overhead
	for _, s := range j.Steps {
		if s.End == nil {
			return fmt.Errorf("step %s has no end time", s.ID)
		}
		own := s.End.Sub(s.Start) - s.Waited
		r.OwnByStep[s.ID] = own
		outside -= own
		if s.ID == pasupgrade.StepPostUpgrade {
			r.PostUpgrade = s.End.Sub(s.Start)
		}
	}
	r.OwnByStep[outsideSteps] = outside
	return nil
}

// TestUpgradeDowntimeBenchmark measures core's downtime from outside and
// the tool's own overhead over PASUPGRADE_BENCH_RUNS single-node upgrades,
// one lab after another so that the runs do not share the CPUs. It prints
// the medians; bench/downtime.sh runs it.
func TestUpgradeDowntimeBenchmark(t *testing.T) {
	runsText := os.Getenv(benchRunsEnv)
	if runsText == "" {
		t.Skip(benchRunsEnv + " is not set; run bench/downtime.sh to measure")
	}
	runs, err := strconv.Atoi(runsText)
	require.NoError(t, err, "%s=%q is not a number", benchRunsEnv, runsText)
	require.Positive(t, runs, "%s must be at least 1", benchRunsEnv)

	var out *os.File
	if path := os.Getenv(benchOutEnv); path != "" {
		out, err = os.Create(path)
		require.NoError(t, err)
		defer out.Close()
	}

	var results []downtimeRun
	for i := range runs {
		t.Run(fmt.Sprintf("run%d", i+1), func(t *testing.T) {
			r := measureUpgrade(t)
			results = append(results, r)
			if out != nil {
				line, err := json.Marshal(r)
				require.NoError(t, err)
				_, err = out.Write(append(line, '\n'))
				require.NoError(t, err)
			}
		})
	}
	require.Len(t, results, runs, "a run failed")
	t.Log("\n" + downtimeTable(results))
}

// measureUpgrade upgrades a fresh single-node lab with the prober running
// and returns the figures.
func measureUpgrade(t *testing.T) downtimeRun {
	l := startLab(t, lab.Options{Topology: lab.TopologySingle})
	ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
	defer cancel()

	prober := &Prober{URL: l.coreURL("mgmt")}
	prober.Start()
	run := l.runCLI(ctx, nil, l.upgradeArgs()...)
	probe := prober.Stop()
	require.Equal(t, 0, run.ExitCode, "pasupgrade-cli upgrade failed; stdout:\n%s", run.Stdout)

	r := downtimeRun{
		ProbeGap: probe.MaxGap, ProbeFailures: probe.Failures, ProbeRequests: probe.Requests,
		ReportedDowntime: run.summary(t).Summary.Downtime,
	}
	journal, err := pasupgrade.ReadJournal(l.lab.WorkDir())
	require.NoError(t, err)
	require.NoError(t, measureJournal(&r, journal))
	return r
}

// downtimeTable returns the medians of the runs as a Markdown table.
func downtimeTable(runs []downtimeRun) string {
	pick := func(f func(downtimeRun) time.Duration) time.Duration {
		values := make([]time.Duration, len(runs))
		for i, r := range runs {
			values[i] = f(r)
		}
		return median(values)
	}
	gap := pick(func(r downtimeRun) time.Duration { return r.ProbeGap })
	post := pick(func(r downtimeRun) time.Duration { return r.PostUpgrade })
	excess := pick(func(r downtimeRun) time.Duration { return r.ProbeGap - r.PostUpgrade })
	rows := [][2]string{
		{"core downtime seen by the prober (longest gap)", ms(gap)},
		{"core downtime in the CLI's summary", ms(pick(func(r downtimeRun) time.Duration { return r.ReportedDowntime }))},
		{"post-upgrade step (the upgrade tool's run)", ms(post)},
		{"prober gap minus post-upgrade (target: at most 200 ms)", ms(excess)},
		{"prober gap / post-upgrade", fmt.Sprintf("%.2f", float64(gap)/float64(post))},
		{"upgrade wall time (journal: preflight to end)", ms(pick(func(r downtimeRun) time.Duration { return r.Wall }))},
		{"waiting on commands, dpkg, containers, the API, systemd", ms(pick(func(r downtimeRun) time.Duration { return r.Waited }))},
		{"tool overhead: wall minus waits (target: at most 2000 ms)", ms(pick(func(r downtimeRun) time.Duration { return r.Overhead }))},
	}
	// The steps with the most own work, by median, explain the overhead.
	var keys []string
	for key := range runs[0].OwnByStep {
		keys = append(keys, key)
	}
	own := func(key string) time.Duration {
		return pick(func(r downtimeRun) time.Duration { return r.OwnByStep[key] })
	}
	sort.Slice(keys, func(i, j int) bool { return own(keys[i]) > own(keys[j]) })
	for _, key := range keys[:min(len(keys), 4)] {
		rows = append(rows, [2]string{"  own work in " + key, ms(own(key))})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Medians of %d single-node upgrades; %d CPUs (GOMAXPROCS), %s/%s.\n\n",
		len(runs), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	b.WriteString("| measure | median |\n| --- | --- |\n")
	for _, row := range rows {
		fmt.Fprintf(&b, "| %s | %s |\n", row[0], row[1])
	}
	return b.String()
}

func median(values []time.Duration) time.Duration {
	sorted := append([]time.Duration(nil), values...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		want   time.Duration
	}{
		{"one", []time.Duration{5}, 5},
		{"odd unsorted", []time.Duration{9, 1, 5}, 5},
		{"even", []time.Duration{4, 1, 3, 2}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, median(tc.values))
		})
	}
}

func TestMeasureJournal(t *testing.T) {
	at := func(ms int) *time.Time {
		v := time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond)
		return &v
	}
	j := &pasupgrade.Journal{
		Started:  *at(0),
		Finished: at(1000),
		Waited:   850 * time.Millisecond,
		Steps: []pasupgrade.StepRecord{
			{ID: pasupgrade.StepBackup, Start: *at(10), End: at(110), Waited: 60 * time.Millisecond},
			{ID: pasupgrade.StepPostUpgrade, Start: *at(120), End: at(920), Waited: 760 * time.Millisecond},
		},
	}
	var r downtimeRun
	require.NoError(t, measureJournal(&r, j))
	require.Equal(t, time.Second, r.Wall)
	require.Equal(t, 800*time.Millisecond, r.PostUpgrade)
	require.Equal(t, 150*time.Millisecond, r.Overhead, "1000 ms wall minus 850 ms of waits")
	require.Equal(t, map[string]time.Duration{
		pasupgrade.StepBackup:      40 * time.Millisecond,
		pasupgrade.StepPostUpgrade: 40 * time.Millisecond,
		outsideSteps:               70 * time.Millisecond, // 100 ms outside steps, 30 ms of it waits
	}, r.OwnByStep)

	j.Steps[1].End = nil
	require.Error(t, measureJournal(&r, j), "an unfinished step")
}
