package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pasops/pasupgrade/deb"
	"github.com/pasops/pasupgrade/runner"
)

func init() { register(newPackagesCmd) }

// packageManager builds the deb.Manager of the packages commands. Tests
// replace it to run a fake instead of dpkg-query.
var packageManager = func(a *app) *deb.Manager {
	m := &deb.Manager{Runner: &runner.Local{}, Logger: a.logger}
	if a.root != "/" {
		m.AdminDir = a.pasPath("/var/lib/dpkg")
	}
	return m
}

func newPackagesCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "packages",
		Short: "Check the PAS package files and show the installed packages",
		Long: `The packages commands look at the three PAS packages: proxedo-api-security
(core), proxedo-api-security-mgmt and proxedo-api-security-storage.

"check" reads .deb files and changes nothing. "status" reads the dpkg
database, under --root when it is not /.`,
	}
	cmd.AddCommand(newPackagesCheckCmd(a), newPackagesStatusCmd(a))
	return cmd
}

func newPackagesCheckCmd(a *app) *cobra.Command {
	var want string
	cmd := &cobra.Command{
		Use:   "check DIR_OR_DEB...",
		Short: "Check that the package files form the complete set for the upgrade",
		Long: `check reads the .deb files in each DIR (files named *.deb or proxedo-api-security*)
or the named .deb files, and checks that they hold exactly the three PAS packages
at --version with architecture "all". A file in DIR that is not a package and not
named *.deb, such as a .sha256 checksum, is listed as skipped.

It lists every problem at once: a missing package, two files of one package, a
wrong version or architecture, a file that is not a .deb, a file that cannot be
read. Nothing is installed. The exit code is 0 only for a complete, correct set
and 3 otherwise.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("no package directory given: run 'pasupgrade-cli packages check DIR'")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := deb.FindSet(args, want)
			var setErr *deb.SetError
			switch {
			case errors.As(err, &setErr):
				a.reportPackageSet(set)
				a.reportSetProblems(setErr)
				return withExitCode(exitCheckFailed, fmt.Errorf(
					"the package set for %s is not complete: %d %s", want, len(setErr.Problems),
					plural(len(setErr.Problems), "problem", "problems")))
			case err != nil:
				return usageErrorf("%v", err)
			}

			a.reportPackageSet(set)
			a.printer.Event("package_set_ok", fmt.Sprintf("the %s package set is complete", want),
				map[string]any{"version": want, "paths": set.Paths()})
			return nil
		},
	}
	cmd.Flags().StringVar(&want, "version", "4.9.0", "package `VERSION` the set must have, compared by Debian's rules")
	return cmd
}

// reportPackageSet prints the packages found and the files passed over.
func (a *app) reportPackageSet(set deb.Set) {
	for _, p := range set.Packages {
		a.printer.Event("package", fmt.Sprintf("ok       %s %s %s", p.Name, p.Version, p.Path), map[string]any{
			"package": p.Name, "version": p.Version.String(), "architecture": p.Architecture,
			"path": p.Path, "conffiles": p.Conffiles, "scripts": p.Scripts,
		})
	}
	for _, s := range set.Skipped {
		a.printer.Event("package_skipped", fmt.Sprintf("skipped  %s: %s", s.Path, s.Reason),
			map[string]string{"path": s.Path, "reason": s.Reason})
	}
}

// reportSetProblems prints one line per problem.
func (a *app) reportSetProblems(setErr *deb.SetError) {
	for _, p := range setErr.Problems {
		a.printer.Event("package_problem", "problem  "+p.String(), map[string]any{
			"kind": string(p.Kind), "package": p.Package, "paths": p.Paths, "detail": p.Detail,
		})
	}
}

func newPackagesStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the state and version of each installed PAS package",
		Long: `status shows, for each PAS package, what dpkg records: installed, config-files
(removed but not purged), not-installed, or broken (an installation or removal
that stopped half-way, with the command that repairs it).

The exit code is 0 unless a package is broken, which exits with 3.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("packages status takes no arguments, got %q", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			m := packageManager(a)
			if err := checkAdminDir(m.AdminDir); err != nil {
				return err
			}
			statuses, err := m.Installed(cmd.Context(), deb.SetNames()...)
			if err != nil {
				return err
			}
			if err := a.printPackageStatus(statuses); err != nil {
				return err
			}

			var broken []string
			for _, st := range statuses {
				if st.State == deb.StateBroken {
					broken = append(broken, st.Name)
				}
			}
			if len(broken) > 0 {
				return withExitCode(exitCheckFailed, fmt.Errorf(
					"%s %s broken; run the repair command shown", strings.Join(broken, ", "),
					plural(len(broken), "is", "are")))
			}
			return nil
		},
	}
}

// checkAdminDir rejects a dpkg database directory without a status file.
// dpkg-query reads a missing database as an empty one, so a wrong --root
// would otherwise show every package as not installed.
func checkAdminDir(dir string) error {
	if dir == "" {
		return nil
	}
	status := filepath.Join(dir, "status")
	if _, err := os.Stat(status); err != nil {
		return usageErrorf("no dpkg database under --root: %v; give the root file system of a PAS node", err)
	}
	return nil
}

func (a *app) printPackageStatus(statuses []deb.Status) error {
	if a.json {
		for _, st := range statuses {
			a.printer.Event("package_status", "", map[string]string{
				"package": st.Name, "state": string(st.State), "version": st.Version,
				"status": st.Detail, "repair": st.Repair,
			})
		}
		return nil
	}

	tw := tabwriter.NewWriter(a.streams.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PACKAGE\tSTATE\tVERSION\tDPKG STATUS")
	for _, st := range statuses {
		version := st.Version
		if version == "" {
			version = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", st.Name, st.State, version, st.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, st := range statuses {
		if st.Repair != "" {
			fmt.Fprintf(a.streams.Out, "repair %s with: %s\n", st.Name, st.Repair)
		}
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
