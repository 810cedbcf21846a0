package deb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"pault.ag/go/debian/version"
)

// The packages of a PAS installation, as their control files name them.
const (
	CorePackage    = "proxedo-api-security"
	MgmtPackage    = "proxedo-api-security-mgmt"
	StoragePackage = "proxedo-api-security-storage"
)

// SetArchitecture is the architecture of every PAS package.
const SetArchitecture = "all"

// SetNames returns the names of the packages an upgrade installs, core
// first. The caller may modify the returned slice.
func SetNames() []string {
	return []string{CorePackage, MgmtPackage, StoragePackage}
}

// ErrIncompleteSet is matched by the *SetError FindSet returns, for callers
// that only need to know the set cannot be installed.
var ErrIncompleteSet = errors.New("deb: the package set is incomplete or invalid")

// ProblemKind classifies what is wrong with a package set.
type ProblemKind string

// The problems FindSet reports.
const (
	ProblemMissing           ProblemKind = "missing"
	ProblemDuplicate         ProblemKind = "duplicate"
	ProblemWrongVersion      ProblemKind = "wrong version"
	ProblemWrongArchitecture ProblemKind = "wrong architecture"
	ProblemUnexpected        ProblemKind = "unexpected package"
	ProblemNotDeb            ProblemKind = "not a .deb"
	ProblemUnreadable        ProblemKind = "unreadable"
)

// Problem is one reason a package set cannot be installed.
type Problem struct {
	Kind ProblemKind

	// Package is the package concerned, empty for a file that could not be
	// read as a package.
	Package string

	// Paths are the files concerned, none for a missing package.
	Paths []string

	// Detail describes what was found and what to do about it.
	Detail string
}

// String returns the problem as one line: subject, kind and detail.
func (p Problem) String() string {
	subject := p.Package
	if subject == "" && len(p.Paths) > 0 {
		subject = p.Paths[0]
	}
	return fmt.Sprintf("%s: %s: %s", subject, p.Kind, p.Detail)
}

// SetError lists every problem found in a package set. It matches
// ErrIncompleteSet with errors.Is.
type SetError struct {
	// Version is the version the set was checked for.
	Version string

	// Problems are ordered by package (core, mgmt, storage), then by
	// path.
	Problems []Problem
}

func (e *SetError) Error() string {
	var b strings.Builder
	noun := "problems"
	if len(e.Problems) == 1 {
		noun = "problem"
	}
	fmt.Fprintf(&b, "the %s package set has %d %s; fix them and check again:",
		e.Version, len(e.Problems), noun)
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Is reports whether target is ErrIncompleteSet.
func (e *SetError) Is(target error) bool { return target == ErrIncompleteSet }

// Set is a complete, checked set of PAS packages of one version.
type Set struct {
	Version version.Version

	// Packages holds one package per name of SetNames, in that order.
	Packages []Package

	// Skipped lists files in the searched directories that were read
	// but are not part of the set, such as other versions of the PAS
	// packages or unrelated packages.
	Skipped []Skipped
}

// Skipped is a file FindSet looked at and did not use.
type Skipped struct {
	Path   string
	Reason string
}

// Paths returns the files of the set in install order.
func (s Set) Paths() []string {
	paths := make([]string, len(s.Packages))
	for i, p := range s.Packages {
		paths[i] = p.Path
	}
	return paths
}

// Names returns the package names of the set in install order.
func (s Set) Names() []string {
	names := make([]string, len(s.Packages))
	for i, p := range s.Packages {
		names[i] = p.Name
	}
	return names
}

// candidate is a file FindSet reads, and whether the caller named it
// directly (explicit) or it was found in a directory.
type candidate struct {
	path     string
	explicit bool
}

// FindSet checks that paths hold exactly the three PAS packages (SetNames)
// at version want and architecture "all", and returns them. Each path is a
// .deb file or a directory. In a directory, FindSet reads the files whose
// names end in ".deb" or start with "proxedo-api-security", and ignores
// other files and packages outside the set. A file there that is not a
// package and not named *.deb, such as NAME.deb.sha256, is listed in
// Set.Skipped. Every problem is reported in one *SetError, before
// anything is installed; the Set is returned with it, holding what was found.
func FindSet(paths []string, want string) (Set, error) {
	return new(SetFinder).FindSet(paths, want)
}

// findSet is FindSet with the files read by inspectAll.
func findSet(paths []string, want string, inspectAll func([]candidate) []inspection) (Set, error) {
	wantVersion, err := version.Parse(want)
	if err != nil {
		return Set{}, fmt.Errorf("invalid package version %q: %w", want, err)
	}
	if len(paths) == 0 {
		return Set{}, fmt.Errorf("no package files or directories given: name the directory that holds the %s .deb files", want)
	}

	var problems []Problem
	candidates, listProblems := listCandidates(paths)
	problems = append(problems, listProblems...)

	set := Set{Version: wantVersion}
	byName := map[string][]Package{}
	inspected := inspectAll(candidates)
	for i, c := range candidates {
		pkg, problem, ok := readCandidate(c, inspected[i])
		switch {
		case problem != nil && problem.Kind == ProblemNotDeb && !c.explicit && !hasDebSuffix(c.path):
			// Checksums and signatures can be named after the package,
			// such as NAME_VERSION_ARCH.deb.sha256.
			set.Skipped = append(set.Skipped, Skipped{Path: c.path,
				Reason: "not a Debian package, and not named *.deb"})
		case problem != nil:
			problems = append(problems, *problem)
		case !ok:
			set.Skipped = append(set.Skipped, Skipped{Path: c.path,
				Reason: fmt.Sprintf("package %s is not part of the PAS set", pkg.Name)})
		default:
			byName[pkg.Name] = append(byName[pkg.Name], pkg)
		}
	}

	// A damaged file named like a package of the set at the wanted version
	// already explains why that package is missing, so "missing" is not
	// reported twice. A damaged file of another version does not.
	explained := map[string]bool{}
	for _, p := range problems {
		if len(p.Paths) == 1 && namesVersion(p.Paths[0], wantVersion) {
			explained[p.Package] = true
		}
	}
	for _, name := range SetNames() {
		pkg, found, skipped := choosePackage(name, byName[name], wantVersion)
		for _, p := range found {
			if p.Kind != ProblemMissing || !explained[name] {
				problems = append(problems, p)
			}
		}
		set.Skipped = append(set.Skipped, skipped...)
		if pkg != nil {
			set.Packages = append(set.Packages, *pkg)
		}
	}

	if len(problems) > 0 {
		sortProblems(problems)
		return set, &SetError{Version: want, Problems: problems}
	}
	return set, nil
}

// listCandidates expands directories into the files FindSet reads. Paths
// that cannot be read become problems.
func listCandidates(paths []string) ([]candidate, []Problem) {
	var candidates []candidate
	var problems []Problem
	var seen []os.FileInfo
	addFile := func(c candidate, info os.FileInfo) {
		// Opening a named pipe or a device could block or never end, so
		// only regular files are read.
		if !info.Mode().IsRegular() {
			problems = append(problems, Problem{Kind: ProblemUnreadable, Paths: []string{c.path},
				Detail: fmt.Sprintf("%s is not a regular file (%s); copy the package file there", c.path, info.Mode().Type())})
			return
		}
		// A file reached twice, by two arguments or through a symbolic
		// link, is read once, so that it is not its own duplicate.
		for _, s := range seen {
			if os.SameFile(s, info) {
				return
			}
		}
		seen = append(seen, info)
		candidates = append(candidates, c)
	}

	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			problems = append(problems, unreadable(p, err))
			continue
		}
		if !info.IsDir() {
			addFile(candidate{path: p, explicit: true}, info)
			continue
		}

		entries, err := os.ReadDir(p)
		if err != nil {
			problems = append(problems, unreadable(p, err))
			continue
		}
		for _, e := range entries {
			if !looksLikePackage(e.Name()) {
				continue
			}
			full := filepath.Join(p, e.Name())
			info, err := os.Stat(full)
			switch {
			case err != nil:
				problems = append(problems, unreadable(full, err))
			case !info.IsDir():
				addFile(candidate{path: full}, info)
			}
		}
	}
	return candidates, problems
}

func looksLikePackage(name string) bool {
	return hasDebSuffix(name) || strings.HasPrefix(name, CorePackage)
}

func hasDebSuffix(name string) bool {
	return strings.HasSuffix(strings.ToLower(name), ".deb")
}

// namesVersion reports whether path is named NAME_VERSION_ARCH.deb with
// version want, or has no version in its name.
func namesVersion(path string, want version.Version) bool {
	fields := strings.Split(filepath.Base(path), "_")
	if len(fields) < 2 {
		return true
	}
	got, err := version.Parse(fields[1])
	return err != nil || version.Compare(got, want) == 0
}

// readCandidate judges one file by its inspection. It returns the package and whether it
// belongs to the set, or the problem that makes the file unusable.
func readCandidate(c candidate, r inspection) (Package, *Problem, bool) {
	pkg, err := r.pkg, r.err
	switch {
	case errors.Is(err, ErrNotDeb):
		return Package{}, &Problem{Kind: ProblemNotDeb, Package: nameFromFile(c.path), Paths: []string{c.path},
			Detail: fmt.Sprintf("%v; download it again or move it out of the directory", err)}, false
	case err != nil:
		p := unreadable(c.path, err)
		p.Package = nameFromFile(c.path)
		return Package{}, &p, false
	}

	if slices.Contains(SetNames(), pkg.Name) {
		return pkg, nil, true
	}
	if c.explicit {
		return pkg, &Problem{Kind: ProblemUnexpected, Package: pkg.Name, Paths: []string{c.path},
			Detail: fmt.Sprintf("%s is %s, not one of %s; leave it out",
				c.path, pkg, strings.Join(SetNames(), ", "))}, false
	}
	return pkg, nil, false
}

// nameFromFile returns the package of the set that a file is named after,
// by Debian's NAME_VERSION_ARCH.deb convention, or "".
func nameFromFile(path string) string {
	name, _, _ := strings.Cut(filepath.Base(path), "_")
	if slices.Contains(SetNames(), name) {
		return name
	}
	return ""
}

func unreadable(path string, err error) Problem {
	detail := err.Error()
	if errors.Is(err, fs.ErrNotExist) {
		detail = fmt.Sprintf("%s does not exist; check the path", path)
	} else if errors.Is(err, fs.ErrPermission) {
		detail = fmt.Sprintf("%v; run as root or make it readable", err)
	}
	return Problem{Kind: ProblemUnreadable, Paths: []string{path}, Detail: detail}
}

// choosePackage picks the one file of package name at version want from
// found, reporting the problems of the name and the files it passed over.
func choosePackage(name string, found []Package, want version.Version) (*Package, []Problem, []Skipped) {
	var right, wrong []Package
	for _, p := range found {
		if version.Compare(p.Version, want) == 0 {
			right = append(right, p)
		} else {
			wrong = append(wrong, p)
		}
	}

	// Debian leaves the epoch out of file names.
	file := fmt.Sprintf("%s_%s_%s.deb", name, want.StringWithoutEpoch(), SetArchitecture)
	var skipped []Skipped
	var problems []Problem
	switch {
	case len(right) == 0 && len(wrong) == 0:
		problems = append(problems, Problem{Kind: ProblemMissing, Package: name,
			Detail: fmt.Sprintf("no %s found; add it", file)})
	case len(right) == 0:
		for _, p := range wrong {
			problems = append(problems, Problem{Kind: ProblemWrongVersion, Package: name,
				Paths: []string{p.Path}, Detail: fmt.Sprintf("%s is version %s, expected %s; replace it with %s",
					p.Path, p.Version, want, file)})
		}
	default:
		// Other versions next to the right one are left over from earlier
		// installations and are not installed.
		for _, p := range wrong {
			skipped = append(skipped, Skipped{Path: p.Path,
				Reason: fmt.Sprintf("%s is version %s, not %s", name, p.Version, want)})
		}
	}

	if len(right) > 1 {
		paths := make([]string, len(right))
		for i, p := range right {
			paths[i] = p.Path
		}
		problems = append(problems, Problem{Kind: ProblemDuplicate, Package: name, Paths: paths,
			Detail: fmt.Sprintf("%s are all version %s; keep one of them", strings.Join(paths, " and "), want)})
		return nil, problems, skipped
	}
	if len(right) == 1 && right[0].Architecture != SetArchitecture {
		problems = append(problems, Problem{Kind: ProblemWrongArchitecture, Package: name,
			Paths: []string{right[0].Path}, Detail: fmt.Sprintf("%s is built for %q, expected %q; replace it with %s",
				right[0].Path, right[0].Architecture, SetArchitecture, file)})
		return nil, problems, skipped
	}
	if len(right) == 1 {
		return &right[0], problems, skipped
	}
	return nil, problems, skipped
}

// sortProblems orders problems by package in install order, then by path.
// Problems of unreadable files, which have no package, come last.
func sortProblems(problems []Problem) {
	rank := func(p Problem) int {
		if i := slices.Index(SetNames(), p.Package); i >= 0 {
			return i
		}
		return len(SetNames())
	}
	slices.SortStableFunc(problems, func(a, b Problem) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(strings.Join(a.Paths, "\n"), strings.Join(b.Paths, "\n"))
	})
}
