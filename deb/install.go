package deb

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/pasops/pasupgrade/runner"
)

// InstallOptions are the answers and the mode of an installation.
type InstallOptions struct {
	// OverwriteConfig answers every package's overwrite-config question:
	// true on a single node, where the installer then writes a working
	// single-node configuration, false on a multi-node setup.
	OverwriteConfig bool

	// AdminPassword, when not empty, answers the mgmt package's
	// admin-password question so that users.htpass gets a bcrypt hash.
	// It is passed on stdin only, and removed from the debconf database
	// after the installation, whether or not it succeeded. Install
	// rejects it when no package of the set defines that question.
	AdminPassword string

	// Interactive runs dpkg on the operator's terminal, without preseeded
	// answers and without the conffile options, so the operator answers
	// the installer's questions. The Runner must support
	// runner.Command.Interactive.
	Interactive bool
}

// KeptConffile is a configuration file that was modified locally and kept,
// with the package's new version left beside it.
type KeptConffile struct {
	Package string

	// Path is the kept file; Dist is the package's version of it,
	// Path + ".dpkg-dist", for the operator to compare and merge.
	Path string
	Dist string
}

// InstallResult describes the changes an installation made.
type InstallResult struct {
	// Packages is the status of each package afterwards, in set order.
	Packages []Status

	// Kept lists the .dpkg-dist files that this installation wrote.
	Kept []KeptConffile

	// ConfiguredPending reports that packages left half-configured by an
	// earlier run were configured before the installation.
	ConfiguredPending bool

	// AlreadyInstalled lists the packages that were installed at the
	// set's version before dpkg ran, which Install left alone.
	AlreadyInstalled []string

	// KeptEarlier lists the .dpkg-dist files found beside the
	// configuration files of the AlreadyInstalled packages. An earlier
	// installation wrote them, such as one whose caller died while dpkg
	// went on, or the "dpkg --configure -a" of this call. Install cannot
	// tell whether anyone reported them before, so it reports them.
	KeptEarlier []KeptConffile
}

// ErrNotInstalled is wrapped when a package is not installed at the set's
// version after dpkg reported success.
var ErrNotInstalled = errors.New("deb: package not installed at the expected version")

// Install installs the packages of set in one dpkg transaction.
//
// Unless opts.Interactive is set, nothing waits on a prompt: the debconf
// answers to the questions the packages define are stored with
// debconf-set-selections (on stdin) and confirmed with
// debconf-get-selections, or with debconf-communicate where debconf-utils
// is not installed. dpkg runs with DEBIAN_FRONTEND=noninteractive added to
// its environment, stdin from /dev/null, and --force-confdef
// --force-confold, which keeps every locally modified configuration file.
// When an earlier run left a package of the set unpacked or
// half-configured, "dpkg --configure -a" runs first with the same options.
// A package then installed at the set's version is not installed again, so
// that repeating Install after an interruption does not run its maintainer
// scripts a second time, which would back up and reset its configuration
// again. Afterwards Install reports each .dpkg-dist file that
// appeared, checks that every package is installed at the set's version,
// and removes a given admin password from the debconf database. A held
// dpkg lock is waited for up to Manager.LockWait.
func (m *Manager) Install(ctx context.Context, set Set, opts InstallOptions) (result InstallResult, err error) {
	if err := m.checkChange(); err != nil {
		return InstallResult{}, err
	}
	if len(set.Packages) == 0 {
		return InstallResult{}, errors.New("installing packages: the set is empty; find the packages with FindSet first")
	}
	if opts.Interactive && opts.AdminPassword != "" {
		return InstallResult{}, errors.New("installing packages: an admin password cannot be preseeded in interactive mode; enter it when the installer asks")
	}
	if _, err := absolutePaths(set.Paths()); err != nil {
		return InstallResult{}, err
	}

	var sels []Selection
	if !opts.Interactive {
		if sels, err = selectionsFor(set, opts); err != nil {
			return InstallResult{}, err
		}
	}

	if opts.AdminPassword != "" {
		// The password must leave the debconf database even when a later
		// step fails or ctx is cancelled.
		defer func() {
			err = errors.Join(err, m.clearPassword(context.WithoutCancel(ctx), opts.AdminPassword))
		}()
	}
	if err := m.preseed(ctx, sels, opts.AdminPassword); err != nil {
		return InstallResult{}, err
	}

	// Maintainer scripts can print the preseeded password, so the output of
	// every dpkg run is redacted too.
	secrets := []string{opts.AdminPassword}
	var statuses []Status
	result.ConfiguredPending, statuses, err = m.configureIfPending(ctx, set.Names(), opts.Interactive, secrets)
	if err != nil {
		return result, err
	}
	if result.ConfiguredPending {
		if statuses, err = m.Installed(ctx, set.Names()...); err != nil {
			return result, fmt.Errorf("checking the installed versions: %w", err)
		}
	}

	todo, installed := splitInstalled(set, statuses)
	if len(installed.Packages) > 0 {
		result.AlreadyInstalled = installed.Names()
		m.emit(Event{Kind: EventSkip, Message: fmt.Sprintf("already installed at %s, left alone: %s",
			set.Version, strings.Join(result.AlreadyInstalled, ", "))})
		if result.KeptEarlier, err = m.earlierDistFiles(ctx, installed); err != nil {
			return result, err
		}
	}
	if len(todo.Packages) == 0 {
		result.Packages, err = m.verifyInstalled(ctx, set)
		return result, err
	}

	conffiles := distCandidates(todo)
	before, err := m.statFiles(ctx, conffiles)
	if err != nil {
		return result, err
	}

	todoPaths, err := absolutePaths(todo.Paths())
	if err != nil {
		return result, err
	}
	m.emit(Event{Kind: EventInstall, Message: fmt.Sprintf("installing %s", strings.Join(todo.Names(), ", "))})
	if err := m.runDpkgInstall(ctx, todoPaths, opts.Interactive, secrets); err != nil {
		return result, m.explainFailure(ctx, set, fmt.Errorf("installing %s: %w", strings.Join(todoPaths, " "), err))
	}

	// dpkg ran to its end even if ctx was cancelled meanwhile, so the kept
	// conffiles are reported now: a repeated Install skips the installed
	// packages and could no longer tell which .dpkg-dist files are new.
	done := context.WithoutCancel(ctx)
	after, err := m.statFiles(done, conffiles)
	if err != nil {
		return result, err
	}
	result.Kept = m.newDistFiles(todo, before, after)

	result.Packages, err = m.verifyInstalled(done, set)
	return result, err
}

// splitInstalled splits set, by the statuses of its packages in set order,
// into the packages still to install and those fully installed at the
// set's version.
func splitInstalled(set Set, statuses []Status) (todo, installed Set) {
	todo, installed = set, set
	todo.Packages, installed.Packages = nil, nil
	for i, p := range set.Packages {
		if st := statuses[i]; st.Installed() && st.IsVersion(set.Version) {
			installed.Packages = append(installed.Packages, p)
		} else {
			todo.Packages = append(todo.Packages, p)
		}
	}
	return todo, installed
}

// checkChange rejects changes to a database other than the system's.
func (m *Manager) checkChange() error {
	if m.AdminDir != "" {
		return fmt.Errorf("changing packages with AdminDir %q is not supported: AdminDir is only for reading another root file system", m.AdminDir)
	}
	return nil
}

func absolutePaths(paths []string) ([]string, error) {
	abs := make([]string, len(paths))
	for i, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("resolving package path %q: %w", p, err)
		}
		abs[i] = a
	}
	return abs, nil
}

// selectionsFor returns the answers of opts to the questions that the
// packages of set define in their templates. A question no package asks
// is left out, except the admin password: a password that no package would
// store is an error rather than silently unused.
func selectionsFor(set Set, opts InstallOptions) ([]Selection, error) {
	defined := map[string]bool{}
	for _, p := range set.Packages {
		for _, q := range p.Questions {
			defined[q] = true
		}
	}

	var sels []Selection
	for _, sel := range Selections(set.Names(), opts.OverwriteConfig, opts.AdminPassword) {
		switch {
		case defined[sel.Question]:
			sels = append(sels, sel)
		case sel.secret():
			return nil, fmt.Errorf("installing packages: no package of the set asks %s, so the admin password "+
				"would not be stored; leave the password out", sel.Question)
		}
	}
	if err := checkSelections(sels); err != nil {
		return nil, fmt.Errorf("installing packages: %w", err)
	}
	return sels, nil
}

// preseed stores the answers sels in the debconf database and confirms
// them. It does nothing when sels is empty.
func (m *Manager) preseed(ctx context.Context, sels []Selection, password string) error {
	if len(sels) == 0 {
		return nil
	}
	shown := make([]string, len(sels))
	for i, sel := range sels {
		value := sel.Value
		if sel.secret() {
			value = "(password, not shown)"
		}
		shown[i] = sel.Question + "=" + value
	}
	m.emit(Event{Kind: EventPreseed, Message: "answering the installer's questions: " + strings.Join(shown, ", ")})

	secrets := []string{password}
	if err := m.setSelections(ctx, sels, secrets); err != nil {
		return err
	}
	return m.confirmSelections(ctx, sels, secrets)
}

func (m *Manager) runDpkgInstall(ctx context.Context, paths []string, interactive bool, secrets []string) error {
	if interactive {
		cmd := runner.Command{Argv: append([]string{"dpkg", "--install"}, paths...), Interactive: true}
		_, err := m.runLocked(ctx, cmd)
		return err
	}

	argv := append([]string{"dpkg"}, conffileOptions...)
	argv = append(argv, "--install")
	argv = append(argv, paths...)
	cmd := m.changeCommand(argv...)
	cmd.Secrets = secrets
	_, err := m.runChange(ctx, cmd)
	return err
}

// ConfigurePending runs "dpkg --configure -a" with DEBIAN_FRONTEND=
// noninteractive and the conffile options Install uses, finishing every
// package that an interrupted run left unpacked or half-configured.
func (m *Manager) ConfigurePending(ctx context.Context) error {
	if err := m.checkChange(); err != nil {
		return err
	}
	return m.configurePending(ctx, false, nil)
}

func (m *Manager) configurePending(ctx context.Context, interactive bool, secrets []string) error {
	argv := append([]string{"dpkg"}, conffileOptions...)
	cmd := m.changeCommand(append(argv, "--configure", "-a")...)
	cmd.Secrets = secrets
	if interactive {
		cmd = runner.Command{Argv: []string{"dpkg", "--configure", "-a"}, Interactive: true}
	}
	if _, err := m.runChange(ctx, cmd); err != nil {
		return fmt.Errorf("configuring packages left half-configured: %w", err)
	}
	return nil
}

// configureIfPending configures pending packages when any of names is
// waiting for it, because dpkg refuses some operations until it is done.
func (m *Manager) configureIfPending(ctx context.Context, names []string, interactive bool, secrets []string) (bool, []Status, error) {
	statuses, err := m.Installed(ctx, names...)
	if err != nil {
		return false, nil, err
	}
	var pending []string
	for _, st := range statuses {
		if st.needsConfigure() {
			pending = append(pending, fmt.Sprintf("%s (%s)", st.Name, st.Detail))
		}
	}
	if len(pending) == 0 {
		return false, statuses, nil
	}

	m.emit(Event{Kind: EventConfigure, Message: fmt.Sprintf(
		"configuring packages an earlier run left unfinished: %s", strings.Join(pending, ", "))})
	return true, statuses, m.configurePending(ctx, interactive, secrets)
}

// verifyInstalled checks that every package of set is installed at the
// set's version and returns the statuses.
func (m *Manager) verifyInstalled(ctx context.Context, set Set) ([]Status, error) {
	statuses, err := m.Installed(ctx, set.Names()...)
	if err != nil {
		return nil, fmt.Errorf("checking the installed versions: %w", err)
	}

	var wrong []string
	for _, st := range statuses {
		if st.Installed() && st.IsVersion(set.Version) {
			continue
		}
		wrong = append(wrong, describeStatus(st))
	}
	if len(wrong) > 0 {
		return statuses, fmt.Errorf("%w: expected %s, found %s", ErrNotInstalled, set.Version, strings.Join(wrong, "; "))
	}
	return statuses, nil
}

func describeStatus(st Status) string {
	desc := fmt.Sprintf("%s %s", st.Name, st.Detail)
	if st.Version != "" {
		desc += " at " + st.Version
	}
	if st.Repair != "" {
		desc += ", repair with: " + st.Repair
	}
	return desc
}

// explainFailure adds the state dpkg left the packages in to a failed
// installation's error, so the operator sees which repair command applies.
func (m *Manager) explainFailure(ctx context.Context, set Set, failure error) error {
	statuses, err := m.Installed(context.WithoutCancel(ctx), set.Names()...)
	if err != nil {
		m.logger().Warn("querying package states after a failed installation", "err", err)
		return failure
	}
	var broken []string
	for _, st := range statuses {
		if st.State == StateBroken {
			broken = append(broken, describeStatus(st))
		}
	}
	if len(broken) == 0 {
		return failure
	}
	return fmt.Errorf("%w; left behind: %s", failure, strings.Join(broken, "; "))
}
