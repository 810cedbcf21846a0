package pasupgrade

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/pasops/pasupgrade/runner"
)

// DryRunDeps wraps deps for a dry run: every method that only reads is
// passed on, and every method that would change the system reports a
// "would …" line to would and returns success without doing anything. File
// writes are reported with a line diff against the current content.
func DryRunDeps(deps Deps, would func(string)) Deps {
	return Deps{
		Runner:   dryRunner{would},
		Packages: dryPackages{deps.Packages, would},
		Tool:     dryTool{deps.Tool, would},
		API:      dryAPI{deps.API, would},
		Services: dryServices{deps.Services, would},
		Remote:   dryRemote{would},
		Files:    dryFiles{deps.Files, would},
		Editor:   deps.Editor,
		Backup:   dryBackup{deps.Backup, deps.Clock, would},
		Clock:    deps.Clock,
	}
}

type dryRunner struct{ would func(string) }

func (d dryRunner) Run(_ context.Context, cmd runner.Command) (runner.Result, error) {
	line := "run " + cmd.String()
	if cmd.User == "" {
		line = "run (as root) " + cmd.String()
	}
	if cmd.Dir != "" {
		line += " (in " + cmd.Dir + ")"
	}
	d.would(line)
	return runner.Result{}, nil
}

type dryPackages struct {
	PackageManager
	would func(string)
}

func (d dryPackages) Install(_ context.Context, req InstallRequest) error {
	var answers []string
	for _, a := range req.Answers {
		value := a.Value
		if a.Secret {
			value = "***"
		}
		answers = append(answers, a.Question+"="+value)
	}
	d.would(fmt.Sprintf("install %s with debconf answers [%s], keeping changed conffiles",
		strings.Join(req.Files, " "), strings.Join(answers, ", ")))
	return nil
}

func (d dryPackages) Purge(_ context.Context, names []string) error {
	d.would("purge " + strings.Join(names, " "))
	return nil
}

type dryTool struct {
	UpgradeTool
	would func(string)
}

func (d dryTool) PullImage(context.Context) error {
	d.would("pull the upgrade tool's image")
	return nil
}

func (d dryTool) PreUpgrade(_ context.Context, req ToolRequest) error {
	d.would(describeTool("pre-upgrade", req))
	return nil
}

func (d dryTool) ConvertConfig(_ context.Context, req ToolRequest) error {
	d.would(describeTool("convert-config", req))
	return nil
}

func (d dryTool) PostUpgrade(_ context.Context, req ToolRequest, timeout time.Duration) error {
	d.would(describeTool(fmt.Sprintf("post-upgrade --config-apply-timeout %d", int(timeout.Seconds())), req))
	return nil
}

func describeTool(sub string, req ToolRequest) string {
	s := "run the upgrade tool " + sub + " as " + req.User + " in " + req.WorkDir
	if req.BaseURL != "" {
		s += " with --frontend-baseurl " + req.BaseURL
	}
	if req.CACert != "" {
		s += " --cacert " + req.CACert
	}
	return s + ", admin password on stdin"
}

type dryAPI struct {
	ManagementAPI
	would func(string)
}

func (d dryAPI) ExportRunning(context.Context, io.Writer) (string, error) {
	d.would("GET the running configuration")
	return "running-config.yaml", nil
}

func (d dryAPI) Import(_ context.Context, path string) error {
	d.would("upload " + path + " to the management API")
	return nil
}

func (d dryAPI) Apply(_ context.Context, timeout time.Duration) error {
	d.would(fmt.Sprintf("POST config apply and wait up to %s", timeout))
	return nil
}

type dryServices struct {
	ServiceManager
	would func(string)
}

func (d dryServices) Start(_ context.Context, unit string) error {
	d.would("systemctl start " + unit)
	return nil
}

func (d dryServices) Stop(_ context.Context, unit string) error {
	d.would("systemctl stop " + unit)
	return nil
}

func (d dryServices) Restart(_ context.Context, unit string) error {
	d.would("systemctl restart " + unit)
	return nil
}

type dryRemote struct{ would func(string) }

func (d dryRemote) Deploy(_ context.Context, args ...string) error {
	d.would("run (as pas) pas-mgmt-deploy-core " + strings.Join(args, " "))
	return nil
}

func (d dryRemote) Run(_ context.Context, access RemoteAccess, host string, cmd runner.Command) (runner.Result, error) {
	d.would(fmt.Sprintf("run on %s as %s over SSH: %s", host, access.User, cmd.String()))
	return runner.Result{}, nil
}

type dryFiles struct {
	FileSystem
	would func(string)
}

func (d dryFiles) WriteFile(ctx context.Context, path string, data []byte, owner string) error {
	old, err := d.ReadFile(ctx, path)
	if err != nil {
		old = nil
	}
	d.would(fmt.Sprintf("write %s (owner %s):\n%s", path, ownerOrKept(owner), LineDiff(string(old), string(data))))
	return nil
}

func ownerOrKept(owner string) string {
	if owner == "" {
		return "unchanged"
	}
	return owner
}

type dryBackup struct {
	BackupStore
	clock Clock
	would func(string)
}

func (d dryBackup) Create(_ context.Context, req BackupRequest) (string, error) {
	dir := filepath.Join(req.Dir, "<new set>")
	what := "bootstrap zip"
	if req.Multi {
		what += " (with " + PASSSHDir + ")"
	}
	d.would("write a backup set into " + req.Dir + ": " + what + ", running configuration, manifest")
	return dir, nil
}

func (d dryBackup) Verify(ctx context.Context, dir string) error {
	if strings.HasSuffix(dir, "<new set>") {
		return nil
	}
	return d.BackupStore.Verify(ctx, dir)
}

func (d dryBackup) Copy(_ context.Context, dir, dest string) error {
	d.would("copy the backup set " + dir + " to " + dest)
	return nil
}

func (d dryBackup) RestoreBootstrap(_ context.Context, dir, owner string) error {
	d.would("extract the bootstrap zip of " + dir + " over / as " + owner)
	return nil
}
