package deb

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pasops/pasupgrade/runner"
)

// distSuffix is the suffix dpkg gives the package's version of a
// configuration file it kept at the local version.
const distSuffix = ".dpkg-dist"

// distCandidates returns the .dpkg-dist path of every conffile of set.
func distCandidates(set Set) []string {
	var paths []string
	for _, p := range set.Packages {
		for _, c := range p.Conffiles {
			paths = append(paths, c+distSuffix)
		}
	}
	return paths
}

// statFiles returns an identity ("inode:mtime") for each of paths that
// exists. The files are looked at through the Runner, because they are on
// the machine dpkg runs on, which may be a container.
func (m *Manager) statFiles(ctx context.Context, paths []string) (map[string]string, error) {
	stamps := map[string]string{}
	if len(paths) == 0 {
		return stamps, nil
	}

	argv := append([]string{"stat", "--format=%i:%Y:%n", "--"}, paths...)
	// LC_ALL=C keeps stat's "No such file or directory" in English for
	// onlyMissing.
	res, err := m.Runner.Run(ctx, runner.Command{Argv: argv, Env: []string{"LC_ALL=C"}})
	if err != nil && !onlyMissing(err, res.Stderr) {
		return nil, fmt.Errorf("looking for .dpkg-dist files: %w", err)
	}

	for line := range strings.Lines(string(res.Stdout)) {
		parts := strings.SplitN(strings.TrimRight(line, "\n"), ":", 3)
		if len(parts) == 3 {
			stamps[parts[2]] = parts[0] + ":" + parts[1]
		}
	}
	return stamps, nil
}

// onlyMissing reports whether stat failed only because some files do not
// exist: exit status 1 and nothing but "No such file or directory" on
// stderr.
func onlyMissing(err error, stderr []byte) bool {
	var exitErr *runner.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode != 1 {
		return false
	}
	for line := range strings.Lines(string(stderr)) {
		if strings.TrimSpace(line) != "" && !strings.Contains(line, "No such file or directory") {
			return false
		}
	}
	return true
}

// newDistFiles returns the .dpkg-dist files that are new or were rewritten
// between the two stamps, and reports each as an event.
func (m *Manager) newDistFiles(set Set, before, after map[string]string) []KeptConffile {
	var kept []KeptConffile
	for _, p := range set.Packages {
		for _, c := range p.Conffiles {
			dist := c + distSuffix
			stamp, ok := after[dist]
			if !ok || before[dist] == stamp {
				continue
			}
			k := KeptConffile{Package: p.Name, Path: c, Dist: dist}
			kept = append(kept, k)
			m.emit(Event{Kind: EventConffileKept, Package: p.Name, Path: c, Message: fmt.Sprintf(
				"kept the locally modified %s; the package's version is in %s, compare and merge it by hand",
				c, dist)})
		}
	}
	return kept
}

// earlierDistFiles reports the .dpkg-dist files beside the configuration
// files of the packages in done. Install leaves those packages alone, so
// their kept files would otherwise go unreported.
func (m *Manager) earlierDistFiles(ctx context.Context, done Set) ([]KeptConffile, error) {
	found, err := m.statFiles(ctx, distCandidates(done))
	if err != nil {
		return nil, err
	}
	var kept []KeptConffile
	for _, p := range done.Packages {
		for _, c := range p.Conffiles {
			dist := c + distSuffix
			if _, ok := found[dist]; !ok {
				continue
			}
			kept = append(kept, KeptConffile{Package: p.Name, Path: c, Dist: dist})
			m.emit(Event{Kind: EventConffileKept, Package: p.Name, Path: c, Message: fmt.Sprintf(
				"%s keeps a local version; an earlier installation left the package's version in %s, compare and merge it by hand",
				c, dist)})
		}
	}
	return kept, nil
}
