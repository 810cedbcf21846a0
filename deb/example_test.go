package deb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"pault.ag/go/debian/version"

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

// nodeRecorder prints each command with its stdin, secrets redacted, and
// replies as a node with the 4.8.0 packages would.
type nodeRecorder struct {
	upgraded bool
	answers  []string
}

func (r *nodeRecorder) Run(_ context.Context, c runner.Command) (runner.Result, error) {
	line := "$ " + c.String()
	if len(c.Env) > 0 {
		line += "  (with " + strings.Join(c.Env, " ") + ")"
	}
	fmt.Println(line)
	var stdin []byte
	if c.Stdin != nil {
		stdin, _ = io.ReadAll(c.Stdin)
		for _, in := range strings.Split(strings.TrimSpace(string(stdin)), "\n") {
			fmt.Println("  " + strings.TrimSpace(runner.Redact(in, c.Secrets)))
		}
	}

	var res runner.Result
	switch c.Argv[0] {
	case "debconf-set-selections":
		for _, line := range strings.Split(strings.TrimSpace(string(stdin)), "\n") {
			f := strings.SplitN(line, " ", 4)
			r.answers = append(r.answers, strings.Join(f, "\t"))
		}
	case "debconf-get-selections":
		res.Stdout = []byte(runner.Redact(strings.Join(r.answers, "\n")+"\n", c.Secrets))
	case "dpkg":
		r.upgraded = true
	case "dpkg-query":
		v := "4.8.0"
		if r.upgraded {
			v = "4.9.0"
		}
		for _, name := range c.Argv[3:] {
			res.Stdout = append(res.Stdout, name+"\tii \t"+v+"\n"...)
		}
	}
	return res, nil
}

func ExampleManager_Install() {
	set := deb.Set{}
	set.Version, _ = version.Parse("4.9.0")
	for _, name := range deb.SetNames() {
		set.Packages = append(set.Packages, deb.Package{
			Path: "/srv/pas/" + name + "_4.9.0_all.deb", Name: name, Version: set.Version,
			Architecture: "all", Questions: []string{name + "/overwrite-config"},
		})
	}
	set.Packages[1].Questions = append(set.Packages[1].Questions, deb.AdminPasswordQuestion)

	m := &deb.Manager{Runner: &nodeRecorder{}}
	_, err := m.Install(context.Background(), set, deb.InstallOptions{
		OverwriteConfig: true, // a single node
		AdminPassword:   "example-password",
	})
	fmt.Println("error:", err)
	// Output:
	// $ debconf-set-selections
	//   proxedo-api-security proxedo-api-security/overwrite-config boolean true
	//   proxedo-api-security-mgmt proxedo-api-security-mgmt/overwrite-config boolean true
	//   proxedo-api-security-storage proxedo-api-security-storage/overwrite-config boolean true
	//   proxedo-api-security-mgmt proxedo-api-security-mgmt/admin-password password ***
	// $ debconf-get-selections
	// $ dpkg-query --show '--showformat=${Package}\t${db:Status-Abbrev}\t${Version}\n' proxedo-api-security proxedo-api-security-mgmt proxedo-api-security-storage
	// $ dpkg --force-confdef --force-confold --install /srv/pas/proxedo-api-security_4.9.0_all.deb /srv/pas/proxedo-api-security-mgmt_4.9.0_all.deb /srv/pas/proxedo-api-security-storage_4.9.0_all.deb  (with DEBIAN_FRONTEND=noninteractive)
	// $ dpkg-query --show '--showformat=${Package}\t${db:Status-Abbrev}\t${Version}\n' proxedo-api-security proxedo-api-security-mgmt proxedo-api-security-storage
	// $ debconf-set-selections
	//   proxedo-api-security-mgmt proxedo-api-security-mgmt/admin-password password
	// $ debconf-get-selections
	// error: <nil>
}
