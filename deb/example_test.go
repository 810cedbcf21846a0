package deb_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pasops/pasupgrade/deb"
	"github.com/pasops/pasupgrade/runner"
)

func ExampleFindSet() {
	_, err := deb.FindSet([]string{"/nonexistent/pas-4.9.0"}, "4.9.0")

	var setErr *deb.SetError
	if errors.As(err, &setErr) {
		for _, p := range setErr.Problems {
			fmt.Println(p.Kind)
		}
	}
	// Output:
	// missing
	// missing
	// missing
	// unreadable
}

func ExampleSelections() {
	for _, s := range deb.Selections(deb.SetNames(), false, "") {
		fmt.Println(s.Owner, s.Question, s.Type, s.Value)
	}
	// Output:
	// proxedo-api-security proxedo-api-security/overwrite-config boolean false
	// proxedo-api-security-mgmt proxedo-api-security-mgmt/overwrite-config boolean false
	// proxedo-api-security-storage proxedo-api-security-storage/overwrite-config boolean false
}

// dpkgQueryRunner replies to dpkg-query as a node with the 4.8.0 core and
// mgmt packages would, and rejects every other command.
type dpkgQueryRunner struct{}

func (dpkgQueryRunner) Run(_ context.Context, c runner.Command) (runner.Result, error) {
	if c.Argv[0] != "dpkg-query" {
		return runner.Result{}, fmt.Errorf("unexpected command %s", c.String())
	}
	return runner.Result{Stdout: []byte(strings.Join([]string{
		"proxedo-api-security\tii \t4.8.0",
		"proxedo-api-security-mgmt\tiF \t4.9.0",
	}, "\n") + "\n")}, nil
}

func ExampleManager_Installed() {
	m := &deb.Manager{Runner: dpkgQueryRunner{}}

	statuses, err := m.Installed(context.Background(), deb.SetNames()...)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, st := range statuses {
		fmt.Println(strings.TrimSpace(fmt.Sprintf("%s: %s %s %s", st.Name, st.State, st.Version, st.Repair)))
	}
	// Output:
	// proxedo-api-security: installed 4.8.0
	// proxedo-api-security-mgmt: broken 4.9.0 dpkg --force-confdef --force-confold --configure -a
	// proxedo-api-security-storage: not-installed
}
