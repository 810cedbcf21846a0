package deb

import (
	"context"
	"fmt"
	"strings"
)

// RemoveResult lists what Remove did with each package.
type RemoveResult struct {
	// Removed are the packages apt-get removed or purged.
	Removed []string

	// Skipped are the packages that were not installed. Without purge,
	// a package whose configuration files are left counts as not
	// installed too.
	Skipped []string
}

// Remove removes the named packages with apt-get, purging their
// configuration files too when purge is set, as "apt remove --purge" does
// in the restore procedure. Packages that are not installed are skipped.
// apt-get runs with DEBIAN_FRONTEND=noninteractive added and stdin from
// /dev/null, and a held dpkg lock is waited for up to Manager.LockWait.
func (m *Manager) Remove(ctx context.Context, names []string, purge bool) (RemoveResult, error) {
	if err := m.checkChange(); err != nil {
		return RemoveResult{}, err
	}
	statuses, err := m.Installed(ctx, names...)
	if err != nil {
		return RemoveResult{}, err
	}

	var result RemoveResult
	var broken []string
	for _, st := range statuses {
		if st.State == StateNotInstalled || (!purge && st.State == StateConfigFiles) {
			result.Skipped = append(result.Skipped, st.Name)
			m.emit(Event{Kind: EventSkip, Package: st.Name,
				Message: fmt.Sprintf("skipping %s: it is not installed", st.Name)})
			continue
		}
		if st.State == StateBroken {
			broken = append(broken, describeStatus(st))
		}
		result.Removed = append(result.Removed, st.Name)
	}
	if len(result.Removed) == 0 {
		return result, nil
	}

	verb := "removing"
	argv := []string{"apt-get", "remove", "--yes"}
	if purge {
		verb = "purging"
		argv = append(argv, "--purge")
	}
	if len(broken) > 0 {
		// apt-get refuses to do anything after an interrupted dpkg run
		// ("you must manually run 'dpkg --configure -a'"), which would
		// block a restore after a crash inside the installation. dpkg
		// itself removes half-installed and unpacked packages.
		m.emit(Event{Kind: EventRemove, Message: fmt.Sprintf(
			"removing with dpkg instead of apt-get, because a package is broken: %s",
			strings.Join(broken, "; "))})
		argv = []string{"dpkg", "--remove"}
		if purge {
			argv = []string{"dpkg", "--purge"}
		}
	}
	argv = append(argv, result.Removed...)
	m.emit(Event{Kind: EventRemove, Message: fmt.Sprintf("%s %s", verb, strings.Join(result.Removed, ", "))})
	if _, err := m.runChange(ctx, m.changeCommand(argv...)); err != nil {
		return result, fmt.Errorf("%s %s: %w", verb, strings.Join(result.Removed, " "), err)
	}

	// The removal ran to its end even if ctx was cancelled meanwhile.
	return result, m.verifyRemoved(context.WithoutCancel(ctx), result.Removed, purge)
}

// verifyRemoved checks that apt-get left none of names installed, and with
// purge not even their configuration files.
func (m *Manager) verifyRemoved(ctx context.Context, names []string, purge bool) error {
	statuses, err := m.Installed(ctx, names...)
	if err != nil {
		return fmt.Errorf("checking the removal: %w", err)
	}
	var left []string
	for _, st := range statuses {
		if st.State == StateNotInstalled || (!purge && st.State == StateConfigFiles) {
			continue
		}
		left = append(left, describeStatus(st))
	}
	if len(left) > 0 {
		return fmt.Errorf("apt-get reported success but left %s", strings.Join(left, "; "))
	}
	return nil
}
