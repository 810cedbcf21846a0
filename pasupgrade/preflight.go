package pasupgrade

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pasops/pasupgrade/runner"
)

// CheckStatus is the verdict of a preflight check.
type CheckStatus string

// Check verdicts. A FAIL stops the run before anything changes, unless the
// check is named in Options.IgnoreChecks, which turns it into a WARN.
const (
	CheckPass CheckStatus = "PASS"
	CheckWarn CheckStatus = "WARN"
	CheckFail CheckStatus = "FAIL"
)

// CheckResult is one preflight check's outcome.
type CheckResult struct {
	Name    string      `json:"name"`
	Status  CheckStatus `json:"status"`
	Message string      `json:"message"`
	// Fix is the operator's next action for a WARN or FAIL.
	Fix string `json:"fix,omitempty"`
	// Ignored is set when a FAIL was turned into a WARN by
	// Options.IgnoreChecks.
	Ignored bool `json:"ignored,omitempty"`
}

// Check is one preflight check. Run must not change the system, except that
// the tool image check pulls a missing image, so that no pull happens while
// core is stopped.
type Check struct {
	Name string
	Run  func(ctx context.Context, e *Env) CheckResult
}

// Report is the outcome of every preflight check, in order.
type Report struct {
	Results []CheckResult `json:"results"`
}

// Failed returns the names of the checks that failed.
func (r Report) Failed() []string {
	var names []string
	for _, res := range r.Results {
		if res.Status == CheckFail {
			names = append(names, res.Name)
		}
	}
	return names
}

// ErrPreflightFailed is returned when a preflight check failed.
var ErrPreflightFailed = errors.New("pasupgrade: preflight checks failed")

// Preflight check names, for Options.IgnoreChecks.
const (
	CheckRoot        = "root"
	CheckPASUser     = "pas-user"
	CheckPackages    = "packages"
	CheckDebSet      = "deb-set"
	CheckServices    = "services"
	CheckAPI         = "management-api"
	CheckToolImage   = "tool-image"
	CheckCABundle    = "ca-bundle"
	CheckWorkDir     = "work-dir"
	CheckBackupSpace = "backup-space"
	CheckSSHKey      = "ssh-key"
	CheckInventory   = "inventory"
	CheckCommonVars  = "common-vars"
	CheckRemoteNodes = "remote-nodes"
	CheckBackupSet   = "backup-set"
	CheckAdminLogin  = "admin-login"
)

// Checks returns the preflight checks of the plan, as guide sections 3.1
// and 4.1 list the prerequisites, plus what the automation itself needs.
func (p *Plan) Checks() []Check {
	if p.Kind == KindRestore {
		checks := []Check{{CheckRoot, checkRoot}, {CheckBackupSet, checkBackupSet}, {CheckDebSet, checkDebSet(p.Path.From)},
			{CheckAdminLogin, checkAdminLogin}}
		if p.Options.multi() {
			checks = append(checks, Check{CheckRemoteNodes, checkRemoteNodes(true)})
		}
		return checks
	}
	checks := []Check{
		{CheckRoot, checkRoot},
		{CheckPASUser, checkPASUser},
		{CheckPackages, checkPackages},
		{CheckDebSet, checkDebSet(p.Path.To)},
		{CheckServices, checkServices},
		{CheckAPI, checkAPI},
		{CheckToolImage, checkToolImage},
		{CheckCABundle, checkCABundle},
		{CheckWorkDir, checkWorkDir},
		{CheckBackupSpace, checkBackupSpace},
	}
	if p.Options.multi() {
		checks = append(checks,
			Check{CheckSSHKey, checkSSHKey},
			Check{CheckInventory, checkFilePresent(InventoryPath, "restore it from the backup or run the deployment tool's setup")},
			Check{CheckCommonVars, checkFilePresent(CommonVarsPath, "restore it from the backup or run the deployment tool's setup")},
			Check{CheckRemoteNodes, checkRemoteNodes(false)},
		)
	}
	return checks
}

func pass(format string, args ...any) CheckResult {
	return CheckResult{Status: CheckPass, Message: fmt.Sprintf(format, args...)}
}

func fail(fix, format string, args ...any) CheckResult {
	return CheckResult{Status: CheckFail, Message: fmt.Sprintf(format, args...), Fix: fix}
}

func warn(fix, format string, args ...any) CheckResult {
	return CheckResult{Status: CheckWarn, Message: fmt.Sprintf(format, args...), Fix: fix}
}

func query(ctx context.Context, e *Env, user string, argv ...string) (string, error) {
	res, err := e.Deps.Runner.Run(ctx, runner.Command{Argv: argv, User: user})
	return strings.TrimSpace(string(res.Stdout)), err
}

func checkRoot(ctx context.Context, e *Env) CheckResult {
	uid, err := query(ctx, e, "", "id", "-u")
	if err != nil {
		return fail("make sure id(1) is installed", "cannot read the user id: %v", err)
	}
	if uid != "0" {
		return fail("run as root, for example with sudo", "running as uid %s, not root", uid)
	}
	return pass("running as root")
}

func checkPASUser(ctx context.Context, e *Env) CheckResult {
	exists, err := userExists(ctx, e)
	switch {
	case err != nil:
		return fail("check the user database (getent passwd pas)", "%v", err)
	case !exists:
		return fail("install PAS "+e.Path.From+" first; its packages create the pas user", "the pas user does not exist")
	}
	return pass("the pas user exists")
}

func checkPackages(ctx context.Context, e *Env) CheckResult {
	local := e.Path.LocalPackages(e.Options)
	installed, err := e.Deps.Packages.Installed(ctx, local)
	if err != nil {
		return fail("check that dpkg-query works", "reading the installed packages: %v", err)
	}
	var wrong []string
	for _, pkg := range local {
		st, ok := installed[pkg]
		switch {
		case !ok:
			wrong = append(wrong, pkg+" is not installed")
		case !st.OK():
			wrong = append(wrong, fmt.Sprintf("%s is %s", pkg, st.Status))
		case st.Version != e.Path.From:
			wrong = append(wrong, fmt.Sprintf("%s is at %s", pkg, st.Version))
		}
	}
	if len(wrong) > 0 {
		return fail("this upgrade starts from "+e.Path.From+"; repair the packages with dpkg --configure -a or reinstall "+e.Path.From,
			"%s", strings.Join(wrong, "; "))
	}
	return pass("%s installed at %s", strings.Join(local, ", "), e.Path.From)
}

func checkDebSet(version string) func(context.Context, *Env) CheckResult {
	return func(ctx context.Context, e *Env) CheckResult {
		files, err := e.Deps.Packages.CheckSet(ctx, e.Options.DebDir, e.Path.Packages, version)
		if err != nil {
			return fail("put exactly one "+version+" .deb of each package into "+e.Options.DebDir, "%v", err)
		}
		return pass("%d packages at %s in %s", len(files), version, e.Options.DebDir)
	}
}

func checkServices(ctx context.Context, e *Env) CheckResult {
	var stopped []string
	for _, unit := range localUnits(e.Options) {
		active, err := e.Deps.Services.IsActive(ctx, unit)
		if err != nil {
			return fail("check systemd (systemctl status "+unit+")", "asking systemd about %s: %v", unit, err)
		}
		if !active {
			stopped = append(stopped, unit)
		}
	}
	if len(stopped) > 0 {
		return fail("start them with systemctl start "+strings.Join(stopped, " "), "%s not running", strings.Join(stopped, ", "))
	}
	return pass("%s running", strings.Join(localUnits(e.Options), ", "))
}

func checkAPI(ctx context.Context, e *Env) CheckResult {
	if e.Options.AdminPassword == "" {
		return fail("give the admin password (it is read from the terminal or --password-file)", "no admin password")
	}
	if err := e.Deps.API.Login(ctx); err != nil {
		return fail("check the base URL, the CA bundle and the admin password", "logging in to the management API: %v", err)
	}
	status, err := e.Deps.API.Status(ctx)
	if err != nil {
		return fail("check the management component's logs", "reading the status: %v", err)
	}
	problems := componentProblems(status, e.Path.From, e.Options.HA)
	if failed := failedNodes(status); len(failed) > 0 {
		problems = append(problems, "reload success is FAILED on "+strings.Join(failed, ", "))
	}
	if e.Options.multi() && !hasRemoteNode(status) {
		problems = append(problems, "no remote core node is listed")
	}
	if len(problems) > 0 {
		return fail("bring every component up and healthy at "+e.Path.From+" before upgrading", "%s", strings.Join(problems, "; "))
	}
	return pass("logged in; %d nodes running %s and healthy", len(status.Nodes), e.Path.From)
}

// adminLoginTimeout bounds the restore's login check, which must not hold
// up a restore whose management API is down.
const adminLoginTimeout = 15 * time.Second

// checkAdminLogin tries the admin password on the management API before a
// restore purges anything: the restore logs in with it to import the
// running configuration, after the packages are gone. An API that cannot
// be reached is a warning, because a failed upgrade may have left the
// management component stopped.
func checkAdminLogin(ctx context.Context, e *Env) CheckResult {
	if e.Options.AdminPassword == "" {
		return fail("give the admin password (it is read from the terminal or --password-file)", "no admin password")
	}
	ctx, cancel := context.WithTimeout(ctx, adminLoginTimeout)
	defer cancel()
	err := e.Deps.API.Login(ctx)
	switch {
	case err == nil:
		return pass("the management API accepts the admin password")
	case errors.Is(err, ErrLoginRejected):
		return fail("give the admin password of the installation the backup set was made from; the restore imports the running configuration with it",
			"the management API rejected the admin password: %v", err)
	default:
		return warn("make sure the password is the one the backup set's installation had; the restore uses it after the packages are purged",
			"could not reach the management API to check the admin password: %v", err)
	}
}

func checkToolImage(ctx context.Context, e *Env) CheckResult {
	image := e.Path.ToolImage
	present, err := e.Deps.Tool.ImagePresent(ctx)
	if err != nil {
		return fail("start the Docker engine and check DOCKER_HOST", "cannot reach the Docker engine: %v", err)
	}
	if present {
		return pass("image %s present", image)
	}
	if e.DryRun {
		return warn("", "image %s is missing; a real run pulls it here, before any change", image)
	}
	if err := e.Deps.Tool.PullImage(ctx); err != nil {
		return fail("log in with docker login to a registry that has "+image+", or load the image with docker load",
			"pulling %s: %v", image, err)
	}
	return pass("image %s pulled", image)
}

func checkCABundle(ctx context.Context, e *Env) CheckResult {
	if e.Options.CACert == "" {
		return pass("no CA bundle given; the system's roots are used")
	}
	name := e.Options.CACert
	if !filepath.IsAbs(name) {
		name = filepath.Join(e.Options.WorkDir, name)
	}
	data, err := e.Deps.Files.ReadFile(ctx, name)
	if err != nil {
		return fail("copy the CA bundle into the work directory", "reading the CA bundle: %v", err)
	}
	count := 0
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fail("replace the bundle with valid PEM certificates", "certificate %d in %s: %v", count+1, name, err)
		}
		if e.Deps.Clock.Now().After(cert.NotAfter) {
			return fail("renew the CA certificate", "certificate %q in %s expired on %s", cert.Subject.CommonName, name, cert.NotAfter.Format("2006-01-02"))
		}
		count++
	}
	if count == 0 {
		return fail("convert it to PEM, for example with openssl x509 -inform der", "no PEM certificates in %s", name)
	}
	return pass("%d CA certificates in %s", count, name)
}

func checkWorkDir(ctx context.Context, e *Env) CheckResult {
	dir := e.Options.WorkDir
	if _, err := query(ctx, e, UserPAS, "test", "-d", dir, "-a", "-w", dir); err != nil {
		return fail(fmt.Sprintf("create it and give it to pas: install -d -o pas -g pas %s", dir),
			"the work directory %s is missing or not writable by pas", dir)
	}
	return pass("%s writable by pas", dir)
}

// backupSources are the bootstrap paths of guide 2.1 whose size the backup
// needs.
var backupSources = []string{
	PASEtc, PASSSHDir,
	"/opt/balasys/usr/share/automation/deploy-core.yml",
	"/opt/balasys/usr/share/automation/host_vars",
	InventoryPath,
	"/opt/balasys/usr/share/automation/roles/deploy-core/vars/main.yml",
}

func checkBackupSpace(ctx context.Context, e *Env) CheckResult {
	dir := e.Options.BackupDir
	if dir == "" {
		dir = DefaultBackupDir
	}
	existing := nearestExisting(ctx, e, dir)
	out, err := query(ctx, e, "", "df", "--output=avail", "-B1", existing)
	if err != nil {
		return fail("check the file system of "+dir, "reading the free space at %s: %v", existing, err)
	}
	lines := strings.Fields(out)
	free, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
	if err != nil {
		return fail("check df's output", "cannot read the free space from df: %q", out)
	}
	var sources []string
	for _, s := range backupSources {
		if _, err := e.Deps.Files.Stat(ctx, s); err == nil {
			sources = append(sources, s)
		}
	}
	if len(sources) == 0 {
		return fail("check that PAS is installed under "+PASHome, "none of the bootstrap files exists: %s", strings.Join(backupSources, ", "))
	}
	out, err = query(ctx, e, "", append([]string{"du", "-s", "-c", "-B1"}, sources...)...)
	if err != nil {
		return fail("check that the bootstrap files are readable", "measuring the bootstrap files: %v", err)
	}
	fields := strings.Fields(out)
	need, err := strconv.ParseInt(fields[len(fields)-2], 10, 64)
	if err != nil {
		return fail("check du's output", "cannot read the size from du: %q", out)
	}
	// The running configuration export and the restore's copy of the set
	// need room too, so twice the bootstrap size plus a margin is asked.
	need = 2*need + 64<<20
	if free < need {
		return fail("free space there or choose another --backup-dir",
			"%s has %d MiB free; the backup needs about %d MiB", dir, free>>20, need>>20)
	}
	return pass("%s has %d MiB free; the backup needs about %d MiB", dir, free>>20, need>>20)
}

func nearestExisting(ctx context.Context, e *Env, dir string) string {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := e.Deps.Files.Stat(ctx, d); err == nil || d == "/" {
			return d
		}
	}
}

func checkSSHKey(ctx context.Context, e *Env) CheckResult {
	for _, name := range sshKeyNames {
		if _, err := e.Deps.Files.Stat(ctx, PASSSHDir+"/"+name); err == nil {
			return pass("pas SSH key %s/%s present", PASSSHDir, name)
		}
	}
	return fail("restore the pas user's key from the backup", "no pas SSH key (%s) in %s", strings.Join(sshKeyNames, ", "), PASSSHDir)
}

func checkFilePresent(name, fix string) func(context.Context, *Env) CheckResult {
	return func(ctx context.Context, e *Env) CheckResult {
		_, err := e.Deps.Files.Stat(ctx, name)
		if errors.Is(err, fs.ErrNotExist) {
			return fail(fix, "%s is missing", name)
		}
		if err != nil {
			return fail(fix, "%s: %v", name, err)
		}
		return pass("%s present", name)
	}
}

// checkRemoteNodes runs "true" on every inventory host over SSH, with the
// pas key of the node (upgrade) or of the backup set (restore).
func checkRemoteNodes(fromBackup bool) func(context.Context, *Env) CheckResult {
	return func(ctx context.Context, e *Env) CheckResult {
		read := func(name string) ([]byte, error) { return e.Deps.Files.ReadFile(ctx, name) }
		if fromBackup {
			read = func(name string) ([]byte, error) {
				return e.Deps.Backup.ReadBootstrapFile(ctx, e.Options.BackupDir, name)
			}
		}
		access, hosts, err := remoteAccessFrom(ctx, read)
		if err != nil {
			return fail("restore the pas user's .ssh directory and the inventory", "%v", err)
		}
		var unreachable []string
		for _, host := range hosts {
			if _, err := e.Deps.Remote.Run(ctx, access, host, runner.Command{Argv: []string{"true"}}); err != nil {
				unreachable = append(unreachable, fmt.Sprintf("%s (%v)", host, err))
			}
		}
		if len(unreachable) > 0 {
			return fail("check the network and the pas user's SSH access to each node", "unreachable over SSH: %s", strings.Join(unreachable, "; "))
		}
		return pass("%d remote nodes reachable over SSH: %s", len(hosts), strings.Join(hosts, ", "))
	}
}

func checkBackupSet(ctx context.Context, e *Env) CheckResult {
	if err := e.Deps.Backup.Verify(ctx, e.Options.BackupDir); err != nil {
		return fail("give the directory of a complete backup set with --backup", "the backup set %s: %v", e.Options.BackupDir, err)
	}
	return pass("backup set %s verified", e.Options.BackupDir)
}

// Preflight runs every check of the plan against deps, sends each result to
// events (nil drops them) and returns the report, as Run does before the
// first step. Checks named in Options.IgnoreChecks are reported as WARN
// instead of FAIL. Every check runs, so the report lists every problem.
// With dryRun set, a missing tool image is reported instead of pulled.
func Preflight(ctx context.Context, plan *Plan, deps Deps, events EventSink, dryRun bool) Report {
	if deps.Clock == nil {
		deps.Clock = SystemClock{}
	}
	env := &Env{Deps: deps, Options: plan.Options, Path: plan.Path, State: &State{},
		DryRun: dryRun, emit: events}
	return preflight(ctx, plan, env)
}

func preflight(ctx context.Context, plan *Plan, env *Env) Report {
	var report Report
	for _, check := range plan.Checks() {
		res := check.Run(ctx, env)
		res.Name = check.Name
		if res.Status == CheckFail && plan.Options.ignored(check.Name) {
			res.Status, res.Ignored = CheckWarn, true
		}
		res.Message = runner.Redact(res.Message, []string{env.Options.AdminPassword})
		report.Results = append(report.Results, res)
		env.send(Event{Kind: EventCheck, Check: &res})
	}
	return report
}
