package pasupgrade

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/pasops/pasupgrade/runner"
)

// apiWait is how long steps wait for the management API to accept a login
// after its service started.
const apiWait = 2 * time.Minute

// sshKeyNames are the private key files looked for in the pas user's .ssh
// directory, in order.
var sshKeyNames = []string{"id_ed25519", "id_ecdsa", "id_rsa"}

func copyBackupStep() Step {
	return Step{
		ID: StepCopyBackup, Title: "Copy the backup set aside before anything is deleted",
		Section: "5", User: UserRoot, Slow: true,
		Action:  "verify the backup set and copy it next to itself",
		Changes: "writes a copy of the backup set",
		Run: func(ctx context.Context, e *Env) error {
			src := e.Options.BackupDir
			if err := e.Deps.Backup.Verify(ctx, src); err != nil {
				return fmt.Errorf("verifying the backup set %s: %w", src, err)
			}
			stamp := e.Started.UTC().Format("20060102T150405Z")
			dest := filepath.Clean(src) + ".restore-" + stamp
			if err := e.Deps.Backup.Copy(ctx, src, dest); err != nil {
				return fmt.Errorf("copying the backup set %s to %s: %w", src, dest, err)
			}
			if e.DryRun {
				// Nothing was copied, so the later steps read the original.
				dest = src
			}
			e.State.BackupSet = dest
			e.Infof("backup set copied to %s; the restore reads that copy", dest)
			return nil
		},
		Done: func(ctx context.Context, e *Env) (bool, error) {
			if e.State.BackupSet == "" {
				return false, nil
			}
			return e.Deps.Backup.Verify(ctx, e.State.BackupSet) == nil, nil
		},
	}
}

func loadAccessStep() Step {
	return Step{
		ID: StepLoadAccess, Title: "Read the pas SSH key and the inventory from the backup set",
		Section: "5.1", User: UserRoot, Always: true,
		Action: "read " + PASSSHDir + " and " + InventoryPath + " from the bootstrap zip",
		Run: func(ctx context.Context, e *Env) error {
			access, hosts, err := remoteAccessFrom(ctx, func(name string) ([]byte, error) {
				return e.Deps.Backup.ReadBootstrapFile(ctx, e.State.BackupSet, name)
			})
			if err != nil {
				return fmt.Errorf("reading remote access from the backup set %s: %w", e.State.BackupSet, err)
			}
			e.access, e.hosts = &access, hosts
			e.Infof("remote nodes: %s", strings.Join(hosts, ", "))
			return nil
		},
	}
}

// remoteAccessFrom reads the pas key, known_hosts and the inventory's hosts
// through read, from a node or from a backup set.
func remoteAccessFrom(ctx context.Context, read func(string) ([]byte, error)) (RemoteAccess, []string, error) {
	access := RemoteAccess{User: PASUser}
	var errs []error
	for _, name := range sshKeyNames {
		key, err := read(PASSSHDir + "/" + name)
		if err == nil {
			access.Key = key
			break
		}
		errs = append(errs, err)
	}
	if access.Key == nil {
		return access, nil, fmt.Errorf("no pas SSH key (%s) in %s: %w", strings.Join(sshKeyNames, ", "), PASSSHDir, errors.Join(errs...))
	}
	known, err := read(PASSSHDir + "/known_hosts")
	if err != nil {
		return access, nil, fmt.Errorf("reading the pas user's known_hosts: %w", err)
	}
	access.KnownHosts = known

	inventory, err := read(InventoryPath)
	if err != nil {
		return access, nil, fmt.Errorf("reading the inventory: %w", err)
	}
	hosts, err := InventoryHosts(inventory)
	if err != nil {
		return access, nil, err
	}
	return access, hosts, nil
}

func stopRemoteStep(ha bool) Step {
	units := []string{UnitCore, UnitStorage}
	if ha {
		units = []string{UnitHA, UnitCore, UnitStorage}
	}
	argv := append([]string{"systemctl", "stop"}, units...)
	return remoteStep(StepStopRemote, "Stop the PAS services on the remote nodes", "5.1.1",
		"stops the remote PAS services", argv, nil)
}

// purgeRemoteStep purges with dpkg rather than the guide's apt remove
// --purge: the PAS packages' sudoers rule lets pas run dpkg and systemctl
// as root on core nodes, and nothing else. For these packages, which
// nothing depends on, both remove the same files.
func purgeRemoteStep(path UpgradePath) Step {
	argv := append([]string{"dpkg", "--purge"}, path.RemotePackages...)
	return remoteStep(StepPurgeRemote, "Remove the PAS packages from the remote nodes", "5.1.2",
		"purges the remote PAS packages", argv, []string{"DEBIAN_FRONTEND=noninteractive"})
}

// remoteStep runs argv as root, with env added, on every remote node over
// SSH.
func remoteStep(id, title, section, changes string, argv, env []string) Step {
	return Step{
		ID: id, Title: title, Section: section, User: UserRoot,
		Action:  "ssh pas@<each node> sudo " + strings.Join(argv, " "),
		Changes: changes,
		Run: func(ctx context.Context, e *Env) error {
			if e.access == nil {
				return fmt.Errorf("no remote access loaded: run step %s first", StepLoadAccess)
			}
			var errs []error
			for _, host := range e.hosts {
				cmd := runner.Command{Argv: argv, User: UserRoot, Env: env}
				if _, err := e.Deps.Remote.Run(ctx, *e.access, host, cmd); err != nil {
					errs = append(errs, fmt.Errorf("on %s: %w", host, err))
				}
			}
			return errors.Join(errs...)
		},
	}
}

func purgeStep(path UpgradePath) Step {
	return Step{
		ID: StepPurge, Title: "Remove the PAS packages", Section: "5.1.2", User: UserRoot,
		Action:  "apt-get remove --purge " + strings.Join(path.Packages, " "),
		Changes: "purges the local PAS packages and their configuration",
		Run: func(ctx context.Context, e *Env) error {
			return e.Deps.Packages.Purge(ctx, e.Path.Packages)
		},
		Done: func(ctx context.Context, e *Env) (bool, error) {
			installed, err := e.Deps.Packages.Installed(ctx, e.Path.Packages)
			return len(installed) == 0, err
		},
	}
}

func removeUserStep() Step {
	return Step{
		ID: StepRemoveUser, Title: "Remove the pas user", Section: "5.1.3", User: UserRoot,
		Action:  "userdel --force --remove pas",
		Changes: "deletes the pas user and " + PASHome,
		Run: func(ctx context.Context, e *Env) error {
			return e.RunAs(ctx, UserRoot, "userdel", "--force", "--remove", PASUser)
		},
		Done: func(ctx context.Context, e *Env) (bool, error) {
			exists, err := userExists(ctx, e)
			return !exists, err
		},
	}
}

// userExists runs getent, whose exit code 2 means "no such key".
func userExists(ctx context.Context, e *Env) (bool, error) {
	_, err := e.Deps.Runner.Run(ctx, runner.Command{Argv: []string{"getent", "passwd", PASUser}})
	switch commandExitCode(err) {
	case 0:
		return true, nil
	case 2:
		return false, nil
	}
	return false, fmt.Errorf("looking up the pas user: %w", err)
}

func reinstallStep(path UpgradePath, opts Options) Step {
	return Step{
		ID: StepReinstall, Title: "Reinstall the " + path.From + " packages", Section: "5.2.1",
		User: UserRoot, Slow: true,
		Action:  "dpkg -i " + strings.Join(path.LocalPackages(opts), " ") + " (" + path.From + ")",
		Changes: "installs the PAS packages at " + path.From + " and creates the pas user",
		Run: func(ctx context.Context, e *Env) error {
			return installPackages(ctx, e, e.Path.From, nil)
		},
		Done: packagesAt(func(e *Env) string { return e.Path.From }),
	}
}

func restoreZipStep() Step {
	return Step{
		ID: StepRestoreZip, Title: "Restore the bootstrap files as the pas user",
		Section: "5.2.1.1", User: UserPAS,
		Action:  "unzip -u -o -d / <backup set>/bootstrap zip",
		Changes: "overwrites the bootstrap files under " + PASHome,
		Run: func(ctx context.Context, e *Env) error {
			return e.Deps.Backup.RestoreBootstrap(ctx, e.State.BackupSet, UserPAS)
		},
	}
}

func importConfigStep() Step {
	return Step{
		ID: StepImportConfig, Title: "Upload the saved running configuration",
		Section: "5.2.2.2", User: UserRoot,
		Action:  "POST the backup set's running configuration to the management API",
		Changes: "stores the saved configuration as pending changes",
		Run: func(ctx context.Context, e *Env) error {
			if err := waitForAPI(ctx, e); err != nil {
				return err
			}
			return e.Deps.API.Import(ctx, e.Deps.Backup.RunningConfig(e.State.BackupSet))
		},
	}
}

func applyConfigStep() Step {
	return Step{
		ID: StepApplyConfig, Title: "Apply the uploaded configuration",
		Section: "5.2.2.3", User: UserRoot,
		Action:  "POST config apply and wait for it",
		Changes: "makes the saved configuration the running one",
		Run: func(ctx context.Context, e *Env) error {
			return e.Deps.API.Apply(ctx, e.Options.applyTimeout(e.Path))
		},
	}
}

// waitForAPI logs in until the management API accepts the login, for at
// most apiWait, because the service needs a while after a start.
func waitForAPI(ctx context.Context, e *Env) error {
	deadline := e.Deps.Clock.Now().Add(apiWait)
	for {
		err := e.Deps.API.Login(ctx)
		if err == nil || e.DryRun {
			return nil
		}
		if errors.Is(err, ErrLoginRejected) {
			return fmt.Errorf("logging in to the management API: %w", err)
		}
		if !e.Deps.Clock.Now().Before(deadline) {
			return fmt.Errorf("the management API did not accept the admin login within %s: %w", apiWait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
