package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pasops/pasupgrade/mgmtapi"
)

// mgmtFlags are the flags of every command that talks to the management
// API. Commands add them with addMgmtFlags and get a logged-in client from
// client.
type mgmtFlags struct {
	url          string
	cacert       string
	user         string
	passwordFile string
	endpoints    map[string]string

	// resolved caches the password, so a command that needs it twice (for
	// the API and for the upgrade tool's stdin) prompts only once.
	resolved string
}

// addMgmtFlags adds --mgmt-url, --cacert, --user, --password-file and
// --mgmt-endpoint to cmd.
func addMgmtFlags(cmd *cobra.Command, f *mgmtFlags) {
	flags := cmd.Flags()
	flags.StringVar(&f.url, "mgmt-url", mgmtapi.DefaultBaseURL,
		"base `URL` of the management component (the upgrade tool's --frontend-baseurl)")
	flags.StringVar(&f.cacert, "cacert", "",
		"PEM `FILE` with the full CA chain of the management TLS certificate (default: system CAs)")
	flags.StringVar(&f.user, "user", "admin", "management user `NAME`")
	flags.StringVar(&f.passwordFile, "password-file", "",
		"`FILE` whose first line is the password (\"-\" for stdin); without it, $"+passwordEnv+
			" or a prompt on the terminal")
	flags.StringToStringVar(&f.endpoints, "mgmt-endpoint", nil,
		"API path override as `NAME=PATH`, NAME one of "+strings.Join(mgmtapi.EndpointNames, ", ")+
			" (repeatable)")
}

// password returns the admin password from the sources resolvePassword
// lists, resolving it at the first call only.
func (f *mgmtFlags) password(a *app) (string, error) {
	if f.resolved != "" {
		return f.resolved, nil
	}
	password, err := resolvePassword(a, f.passwordFile, f.user)
	if err != nil {
		return "", err
	}
	f.resolved = password
	return password, nil
}

// newClient returns a client of --mgmt-url that is not logged in. A bad
// URL or CA bundle is a usage error.
func (f *mgmtFlags) newClient(a *app, extra ...mgmtapi.Option) (*mgmtapi.Client, error) {
	var paths mgmtapi.Endpoints
	for _, name := range slices.Sorted(maps.Keys(f.endpoints)) {
		if err := paths.Set(name, f.endpoints[name]); err != nil {
			return nil, usageErrorf("invalid --mgmt-endpoint: %v", err)
		}
	}
	opts := []mgmtapi.Option{mgmtapi.WithLogger(a.logger), mgmtapi.WithEndpoints(paths)}
	if f.cacert != "" {
		opts = append(opts, mgmtapi.WithCAFile(f.cacert))
	}
	opts = append(opts, extra...)
	c, err := mgmtapi.New(f.url, opts...)
	if err != nil {
		return nil, usageErrorf("invalid --mgmt-url or --cacert: %v", err)
	}
	return c, nil
}

// client resolves the password, logs in and returns the client, built
// with the extra options.
func (f *mgmtFlags) client(ctx context.Context, a *app, extra ...mgmtapi.Option) (*mgmtapi.Client, error) {
	c, err := f.newClient(a, extra...)
	if err != nil {
		return nil, err
	}
	password, err := f.password(a)
	if err != nil {
		return nil, err
	}
	if err := c.Login(ctx, f.user, password); err != nil {
		if errors.Is(err, mgmtapi.ErrUnauthorized) {
			return nil, fmt.Errorf("%w; check --user and the password source", err)
		}
		return nil, err
	}
	return c, nil
}

// transferProgress shows a byte progress bar for an export or import. The
// bar starts at the first report, which carries the total.
type transferProgress struct {
	a     *app
	label string
	bar   progress
}

func (p *transferProgress) update(done, total int64) {
	if p.bar == nil {
		p.bar = p.a.printer.Progress(p.label, total, true)
	}
	p.bar.Set(done)
}

func (p *transferProgress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

// runningConfigExporter adapts a client to backup.Exporter, which stores
// the running configuration in a backup set.
type runningConfigExporter struct {
	client *mgmtapi.Client
}

// ExportConfig writes the running configuration to w and returns the file
// name the server gave it.
func (e runningConfigExporter) ExportConfig(ctx context.Context, w io.Writer) (string, error) {
	exp, err := e.client.ExportConfig(ctx, mgmtapi.ExportKindRunning, w)
	return exp.Name, err
}
