package pasupgrade

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/pasops/pasupgrade/runner"
)

// waitMeter adds up the time a run spends waiting on the system rather
// than working itself: commands, dpkg, the upgrade tool's containers, the
// management API, systemd and remote nodes. Waits that overlap, such as an
// API export inside a backup, count once.
type waitMeter struct {
	clock Clock

	mu     sync.Mutex
	active int
	since  time.Time
	total  time.Duration
}

// begin starts a wait and returns the function that ends it.
func (m *waitMeter) begin() (end func()) {
	m.mu.Lock()
	if m.active == 0 {
		m.since = m.clock.Now()
	}
	m.active++
	m.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.active--
			if m.active == 0 {
				m.total += m.clock.Now().Sub(m.since)
			}
		})
	}
}

// waited returns the time spent waiting so far, a wait in progress
// included.
func (m *waitMeter) waited() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.active > 0 {
		return m.total + m.clock.Now().Sub(m.since)
	}
	return m.total
}

// meteredDeps wraps the dependencies whose calls wait on the system so that
// m measures them. Files, Editor and Backup are the run's own work: local
// file access, edits in memory, and the backup's zip and digests. Of
// Packages, CheckSet reads the .deb files in this process and is own work
// too.
func meteredDeps(deps Deps, m *waitMeter) Deps {
	metered := deps
	if deps.Runner != nil {
		metered.Runner = meteredRunner{deps.Runner, m}
	}
	if deps.Packages != nil {
		metered.Packages = meteredPackages{deps.Packages, m}
	}
	if deps.Tool != nil {
		metered.Tool = meteredTool{deps.Tool, m}
	}
	if deps.API != nil {
		metered.API = meteredAPI{deps.API, m}
	}
	if deps.Services != nil {
		metered.Services = meteredServices{deps.Services, m}
	}
	if deps.Remote != nil {
		metered.Remote = meteredRemote{deps.Remote, m}
	}
	return metered
}

type meteredRunner struct {
	runner.Runner
	m *waitMeter
}

func (r meteredRunner) Run(ctx context.Context, cmd runner.Command) (runner.Result, error) {
	defer r.m.begin()()
	return r.Runner.Run(ctx, cmd)
}

type meteredPackages struct {
	PackageManager
	m *waitMeter
}

func (p meteredPackages) Installed(ctx context.Context, names []string) (map[string]PackageStatus, error) {
	defer p.m.begin()()
	return p.PackageManager.Installed(ctx, names)
}

func (p meteredPackages) Install(ctx context.Context, req InstallRequest) error {
	defer p.m.begin()()
	return p.PackageManager.Install(ctx, req)
}

func (p meteredPackages) Purge(ctx context.Context, names []string) error {
	defer p.m.begin()()
	return p.PackageManager.Purge(ctx, names)
}

type meteredTool struct {
	UpgradeTool
	m *waitMeter
}

func (t meteredTool) ImagePresent(ctx context.Context) (bool, error) {
	defer t.m.begin()()
	return t.UpgradeTool.ImagePresent(ctx)
}

func (t meteredTool) PullImage(ctx context.Context) error {
	defer t.m.begin()()
	return t.UpgradeTool.PullImage(ctx)
}

func (t meteredTool) PreUpgrade(ctx context.Context, req ToolRequest) error {
	defer t.m.begin()()
	return t.UpgradeTool.PreUpgrade(ctx, req)
}

func (t meteredTool) ConvertConfig(ctx context.Context, req ToolRequest) error {
	defer t.m.begin()()
	return t.UpgradeTool.ConvertConfig(ctx, req)
}

func (t meteredTool) PostUpgrade(ctx context.Context, req ToolRequest, applyTimeout time.Duration) error {
	defer t.m.begin()()
	return t.UpgradeTool.PostUpgrade(ctx, req, applyTimeout)
}

type meteredAPI struct {
	ManagementAPI
	m *waitMeter
}

func (a meteredAPI) Login(ctx context.Context) error {
	defer a.m.begin()()
	return a.ManagementAPI.Login(ctx)
}

func (a meteredAPI) Status(ctx context.Context) (Status, error) {
	defer a.m.begin()()
	return a.ManagementAPI.Status(ctx)
}

// ExportRunning counts the whole export as a wait, the writes to w
// included: w is the backup's file, and the time goes to the API's pace.
func (a meteredAPI) ExportRunning(ctx context.Context, w io.Writer) (string, error) {
	defer a.m.begin()()
	return a.ManagementAPI.ExportRunning(ctx, w)
}

func (a meteredAPI) Import(ctx context.Context, path string) error {
	defer a.m.begin()()
	return a.ManagementAPI.Import(ctx, path)
}

func (a meteredAPI) Apply(ctx context.Context, timeout time.Duration) error {
	defer a.m.begin()()
	return a.ManagementAPI.Apply(ctx, timeout)
}

type meteredServices struct {
	ServiceManager
	m *waitMeter
}

func (s meteredServices) Start(ctx context.Context, unit string) error {
	defer s.m.begin()()
	return s.ServiceManager.Start(ctx, unit)
}

func (s meteredServices) Stop(ctx context.Context, unit string) error {
	defer s.m.begin()()
	return s.ServiceManager.Stop(ctx, unit)
}

func (s meteredServices) Restart(ctx context.Context, unit string) error {
	defer s.m.begin()()
	return s.ServiceManager.Restart(ctx, unit)
}

func (s meteredServices) IsActive(ctx context.Context, unit string) (bool, error) {
	defer s.m.begin()()
	return s.ServiceManager.IsActive(ctx, unit)
}

type meteredRemote struct {
	RemoteNodes
	m *waitMeter
}

func (r meteredRemote) Deploy(ctx context.Context, args ...string) error {
	defer r.m.begin()()
	return r.RemoteNodes.Deploy(ctx, args...)
}

func (r meteredRemote) Run(ctx context.Context, access RemoteAccess, host string, cmd runner.Command) (runner.Result, error) {
	defer r.m.begin()()
	return r.RemoteNodes.Run(ctx, access, host, cmd)
}
