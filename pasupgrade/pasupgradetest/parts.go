package pasupgradetest

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/pasops/pasupgrade/pasupgrade"
	"github.com/pasops/pasupgrade/runner"
)

type fakePackages System

func (p *fakePackages) Installed(_ context.Context, names []string) (map[string]pasupgrade.PackageStatus, error) {
	s := (*System)(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.query("packages.installed"); err != nil {
		return nil, err
	}
	out := map[string]pasupgrade.PackageStatus{}
	for _, n := range names {
		if st, ok := s.Packages[n]; ok {
			out[n] = st
		}
	}
	return out, nil
}

func (p *fakePackages) CheckSet(_ context.Context, dir string, names []string, version string) (map[string]string, error) {
	s := (*System)(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.query("packages.check-set " + version); err != nil {
		return nil, err
	}
	if !s.DebSets[version] {
		return nil, fmt.Errorf("no %s packages in %s", version, dir)
	}
	files := map[string]string{}
	for _, n := range names {
		files[n] = path.Join(dir, pasupgrade.DebFile(n, version))
	}
	return files, nil
}

func (p *fakePackages) Install(_ context.Context, req pasupgrade.InstallRequest) error {
	s := (*System)(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	var names, answers []string
	for _, f := range req.Files {
		names = append(names, path.Base(f))
	}
	for _, a := range req.Answers {
		value := a.Value
		if a.Secret {
			if value != s.Password {
				s.t.Errorf("pasupgradetest: the admin-password debconf value is %q, not the admin password", value)
			}
			value = "***"
		}
		answers = append(answers, a.Question+"="+value)
	}
	entry := "install " + strings.Join(names, " ")
	if len(answers) > 0 {
		entry += " answers " + strings.Join(answers, ",")
	}
	if err := s.change(entry); err != nil {
		return err
	}
	for _, f := range names {
		parts := strings.Split(f, "_")
		s.Packages[parts[0]] = pasupgrade.PackageStatus{Version: parts[1], Status: "installed"}
		if parts[0] == pasupgrade.PackageMgmt && parts[1] == s.Path.To && len(req.Answers) > 0 {
			for _, a := range req.Answers {
				if a.Secret {
					s.Files[pasupgrade.UsersHtpass] = []byte("admin:$2y$10$fakebcrypthash\n")
				}
			}
		}
	}
	s.PASUser = true
	return nil
}

func (p *fakePackages) Purge(_ context.Context, names []string) error {
	s := (*System)(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.change("purge " + strings.Join(names, " ")); err != nil {
		return err
	}
	for _, n := range names {
		delete(s.Packages, n)
	}
	return nil
}

type fakeTool System

func (f *fakeTool) ImagePresent(context.Context) (bool, error) {
	s := (*System)(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.HasImage, s.query("tool.image-present")
}

func (f *fakeTool) PullImage(context.Context) error {
	s := (*System)(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.change("tool pull " + s.Path.ToolImage); err != nil {
		return err
	}
	s.HasImage = true
	return nil
}

func (f *fakeTool) run(sub string, req pasupgrade.ToolRequest, writes string) error {
	s := (*System)(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Password != s.Password {
		s.t.Errorf("pasupgradetest: %s got a wrong admin password", sub)
	}
	if err := s.change("tool " + sub + " as " + req.User); err != nil {
		return err
	}
	if writes != "" {
		s.Files[path.Join(req.WorkDir, writes)] = []byte("pas_config_version: x\n")
		s.Owners[path.Join(req.WorkDir, writes)] = req.User
	}
	return nil
}

func (f *fakeTool) PreUpgrade(_ context.Context, req pasupgrade.ToolRequest) error {
	return f.run("pre-upgrade", req, f.Path.ExportFile)
}

func (f *fakeTool) ConvertConfig(_ context.Context, req pasupgrade.ToolRequest) error {
	return f.run("convert-config", req, f.Path.ConvertedFile)
}

func (f *fakeTool) PostUpgrade(_ context.Context, req pasupgrade.ToolRequest, timeout time.Duration) error {
	return f.run(fmt.Sprintf("post-upgrade timeout=%s", timeout), req, "")
}

type fakeAPI System

func (a *fakeAPI) Login(context.Context) error {
	s := (*System)(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.query("api.login")
}

// Status reports the local node "mgmt" with the local units' state and
// package versions, and each remote host with its version.
func (a *fakeAPI) Status(context.Context) (pasupgrade.Status, error) {
	s := (*System)(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.query("api.status"); err != nil {
		return pasupgrade.Status{}, err
	}
	local := pasupgrade.NodeStatus{Name: "mgmt"}
	for _, c := range []struct{ name, unit, pkg string }{
		{"mgmt", pasupgrade.UnitMgmt, pasupgrade.PackageMgmt},
		{"storage", pasupgrade.UnitStorage, pasupgrade.PackageStorage},
		{"core", pasupgrade.UnitCore, pasupgrade.PackageCore},
	} {
		if c.name == "core" && len(s.Remote) > 0 && !s.Units[c.unit] {
			continue
		}
		local.Components = append(local.Components, s.component(c.name, "mgmt", s.Packages[c.pkg].Version, s.Units[c.unit]))
	}
	status := pasupgrade.Status{Nodes: []pasupgrade.NodeStatus{local}}
	for _, host := range slices.Sorted(maps.Keys(s.Remote)) {
		v := s.Remote[host]
		status.Nodes = append(status.Nodes, pasupgrade.NodeStatus{Name: host, Components: []pasupgrade.ComponentStatus{
			s.component("core", host, v, v != ""), s.component("storage", host, v, v != ""),
		}})
	}
	return status, nil
}

func (s *System) component(name, node, version string, running bool) pasupgrade.ComponentStatus {
	c := pasupgrade.ComponentStatus{Name: name, Version: version, State: "stopped", ReloadSuccess: pasupgrade.ReloadOK}
	if running {
		c.State = "running"
	}
	if slices.Contains(s.ReloadFailed, node) {
		c.ReloadSuccess = pasupgrade.ReloadFailed
	}
	return c
}

func (a *fakeAPI) ExportRunning(_ context.Context, w io.Writer) (string, error) {
	s := (*System)(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.change("api export running"); err != nil {
		return "", err
	}
	_, err := io.WriteString(w, "pas_config_version: "+s.Path.From+"\n")
	return s.Path.ExportFile, err
}

func (a *fakeAPI) Import(_ context.Context, name string) error {
	s := (*System)(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.change("api import " + path.Base(name))
}

func (a *fakeAPI) Apply(_ context.Context, timeout time.Duration) error {
	s := (*System)(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.change(fmt.Sprintf("api apply timeout=%s", timeout)); err != nil {
		return err
	}
	s.ReloadFailed = nil
	return nil
}

type fakeServices System

func (f *fakeServices) set(verb, unit string, active bool) error {
	s := (*System)(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, known := s.Units[unit]; !known && unit != pasupgrade.UnitHA {
		return s.unexpected("unit " + unit)
	}
	if err := s.change("systemctl " + verb + " " + unit); err != nil {
		return err
	}
	s.Units[unit] = active
	return nil
}

func (f *fakeServices) Start(_ context.Context, unit string) error {
	return f.set("start", unit, true)
}

func (f *fakeServices) Stop(_ context.Context, unit string) error {
	return f.set("stop", unit, false)
}

func (f *fakeServices) Restart(_ context.Context, unit string) error {
	return f.set("restart", unit, true)
}

func (f *fakeServices) IsActive(_ context.Context, unit string) (bool, error) {
	s := (*System)(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Units[unit], s.query("systemctl is-active " + unit)
}

type fakeRemote System

// deployFlags are the pas-mgmt-deploy-core flags the guide uses.
var deployFlags = []string{"--deploy-core", "--restart-storage", "--restart-core", "--deploy-ha", "--restart-ha"}

// remoteUser returns the account a remote command runs as: user, or the
// SSH login when user is empty.
func remoteUser(user, login string) string {
	if user == "" {
		return login
	}
	return user
}

// Deploy moves every remote node to the version of the local core package
// for --deploy-core and --restart-core, as the deployment tool installs
// the .deb that common_vars.yml names.
func (f *fakeRemote) Deploy(_ context.Context, args ...string) error {
	s := (*System)(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, arg := range args {
		if !slices.Contains(deployFlags, arg) {
			return s.unexpected("pas-mgmt-deploy-core flag " + arg)
		}
	}
	if err := s.change("run[pas] pas-mgmt-deploy-core " + strings.Join(args, " ")); err != nil {
		return err
	}
	if slices.Contains(args, "--deploy-core") || slices.Contains(args, "--restart-core") {
		version := s.Path.From
		if strings.Contains(string(s.Files[pasupgrade.CommonVarsPath]), s.Path.To) {
			version = s.Path.To
		}
		for h := range s.Remote {
			s.Remote[h] = version
		}
	}
	return nil
}

func (f *fakeRemote) Run(_ context.Context, access pasupgrade.RemoteAccess, host string, cmd runner.Command) (runner.Result, error) {
	s := (*System)(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.Remote[host]; !ok {
		return runner.Result{}, s.unexpected("remote host " + host)
	}
	if len(access.Key) == 0 || access.User != pasupgrade.PASUser {
		s.t.Errorf("pasupgradetest: SSH to %s without the pas key", host)
	}
	entry := "ssh " + host + " [" + userOf(cmd.User) + "] " + strings.Join(cmd.Argv, " ")
	if len(cmd.Argv) == 1 && cmd.Argv[0] == "true" {
		return runner.Result{}, s.query(entry)
	}
	// The plans run only systemctl and dpkg on a core node, as root
	// through sudo, because the PAS sudoers rule allows pas just these.
	if len(cmd.Argv) == 0 || (cmd.Argv[0] != "systemctl" && cmd.Argv[0] != "dpkg") {
		return runner.Result{ExitCode: 1}, s.unexpected("remote command " + cmd.String() + " on " + host)
	}
	if cmd.User != pasupgrade.UserRoot {
		return runner.Result{ExitCode: 1}, s.unexpected(fmt.Sprintf("remote command %s on %s as %s, not as root through sudo",
			cmd.String(), host, remoteUser(cmd.User, access.User)))
	}
	if err := s.change(entry); err != nil {
		return runner.Result{ExitCode: 1}, err
	}
	if slices.Contains(cmd.Argv, "--purge") {
		s.Remote[host] = ""
	}
	return runner.Result{}, nil
}

type fakeFiles System

func (f *fakeFiles) ReadFile(_ context.Context, name string) ([]byte, error) {
	s := (*System)(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.query("read " + name); err != nil {
		return nil, err
	}
	data, ok := s.Files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return slices.Clone(data), nil
}

func (f *fakeFiles) WriteFile(_ context.Context, name string, data []byte, owner string) error {
	s := (*System)(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.change("write " + name + " owner=" + userOf(owner)); err != nil {
		return err
	}
	s.Files[name] = slices.Clone(data)
	s.Owners[name] = owner
	return nil
}

func (f *fakeFiles) Stat(_ context.Context, name string) (fs.FileInfo, error) {
	s := (*System)(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.query("stat " + name); err != nil {
		return nil, err
	}
	if data, ok := s.Files[name]; ok {
		return fileInfo{name: path.Base(name), size: int64(len(data))}, nil
	}
	prefix := strings.TrimSuffix(name, "/") + "/"
	for other := range s.Files {
		if strings.HasPrefix(other, prefix) || name == "/" {
			return fileInfo{name: path.Base(name), dir: true}, nil
		}
	}
	return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
}

type fileInfo struct {
	name string
	size int64
	dir  bool
}

func (i fileInfo) Name() string { return i.name }
func (i fileInfo) Size() int64  { return i.size }
func (i fileInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return i.dir }
func (i fileInfo) Sys() any           { return nil }

type fakeBackup System

// bootstrapPrefixes are the paths a backup set keeps, as guide 2.1 lists.
var bootstrapPrefixes = []string{pasupgrade.PASEtc + "/", pasupgrade.PASSSHDir + "/", "/opt/balasys/usr/share/automation/"}

func (b *fakeBackup) Create(ctx context.Context, req pasupgrade.BackupRequest) (string, error) {
	s := (*System)(b)
	s.mu.Lock()
	s.nextID++
	dir := path.Join(req.Dir, fmt.Sprintf("set-%d", s.nextID))
	err := s.change(fmt.Sprintf("backup create in %s multi=%t", req.Dir, req.Multi))
	s.mu.Unlock()
	if err != nil {
		return "", err
	}
	var export strings.Builder
	if _, err := req.ExportRunning(ctx, &export); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	set := map[string][]byte{}
	for name, data := range s.Files {
		for _, p := range bootstrapPrefixes {
			if strings.HasPrefix(name, p) && (req.Multi || p != pasupgrade.PASSSHDir+"/") {
				set[name] = slices.Clone(data)
			}
		}
	}
	set[b.RunningConfig(dir)] = []byte(export.String())
	s.sets[dir] = set
	return dir, nil
}

// AddBackupSet makes dir a valid backup set holding the current bootstrap
// files, for restore tests.
func (s *System) AddBackupSet(dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := map[string][]byte{}
	for name, data := range s.Files {
		for _, p := range bootstrapPrefixes {
			if strings.HasPrefix(name, p) {
				set[name] = slices.Clone(data)
			}
		}
	}
	s.sets[dir] = set
}

func (b *fakeBackup) Verify(_ context.Context, dir string) error {
	s := (*System)(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.query("backup verify " + dir); err != nil {
		return err
	}
	if _, ok := s.sets[dir]; !ok {
		return fmt.Errorf("%s is not a backup set", dir)
	}
	return nil
}

func (b *fakeBackup) Copy(_ context.Context, dir, dest string) error {
	s := (*System)(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.change("backup copy " + dir + " to " + dest); err != nil {
		return err
	}
	s.sets[dest] = maps.Clone(s.sets[dir])
	return nil
}

func (b *fakeBackup) ReadBootstrapFile(_ context.Context, dir, name string) ([]byte, error) {
	s := (*System)(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	data, ok := s.sets[dir][name]
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	return slices.Clone(data), nil
}

func (b *fakeBackup) RunningConfig(dir string) string {
	return path.Join(dir, "running-config.yaml")
}

func (b *fakeBackup) RestoreBootstrap(_ context.Context, dir, owner string) error {
	s := (*System)(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.change("backup restore " + dir + " as " + owner); err != nil {
		return err
	}
	for name, data := range s.sets[dir] {
		s.Files[name] = slices.Clone(data)
		s.Owners[name] = owner
	}
	return nil
}
