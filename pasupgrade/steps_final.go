package pasupgrade

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
)

// componentHA is the HA component's name in the management API's status.
const componentHA = "ha"

// Hash schemes of the admin password in users.htpass.
const (
	HashBcrypt  = "bcrypt"
	HashSHA1    = "sha1"
	HashUnknown = "unknown"
)

func verifyVersionsStep(section, version string, remote bool) Step {
	return Step{
		ID: StepVerifyVersions, Title: "Verify that every component runs " + version,
		Section: section, User: UserRoot,
		Action: "dpkg-query the PAS packages; GET the management API status",
		Run: func(ctx context.Context, e *Env) error {
			return verifyVersions(ctx, e, version, remote)
		},
	}
}

func verifyVersions(ctx context.Context, e *Env, version string, remote bool) error {
	local := e.Path.LocalPackages(e.Options)
	installed, err := e.Deps.Packages.Installed(ctx, local)
	if err != nil {
		return fmt.Errorf("reading the installed packages: %w", err)
	}
	var wrong []string
	for _, pkg := range local {
		st, ok := installed[pkg]
		switch {
		case !ok:
			wrong = append(wrong, pkg+" is not installed")
		case st.Version != version || !st.OK():
			wrong = append(wrong, fmt.Sprintf("%s is %s (%s)", pkg, st.Version, st.Status))
		}
	}
	if err := waitForAPI(ctx, e); err != nil {
		return err
	}
	status, err := e.Deps.API.Status(ctx)
	if err != nil {
		return fmt.Errorf("reading the management API status: %w", err)
	}
	wrong = append(wrong, componentProblems(status, version, e.Options.HA)...)
	if remote && !hasRemoteNode(status) {
		wrong = append(wrong, "the status lists no remote core node")
	}
	if len(wrong) > 0 {
		return fmt.Errorf("not every component runs %s: %s", version, strings.Join(wrong, "; "))
	}
	e.Infof("every package and component runs %s", version)
	return nil
}

// componentProblems lists components that are not running at version. The
// HA component counts only when ha is set: without HA its unit is installed
// with the core package but never started.
func componentProblems(status Status, version string, ha bool) []string {
	var problems []string
	if len(status.Nodes) == 0 {
		return []string{"the status lists no nodes"}
	}
	for _, node := range status.Nodes {
		for _, c := range node.Components {
			if c.Name == componentHA && !ha {
				continue
			}
			if c.State != "running" {
				problems = append(problems, fmt.Sprintf("%s on node %s is %s", c.Name, node.Name, c.State))
			}
			if c.Version != version {
				problems = append(problems, fmt.Sprintf("%s on node %s is at %s", c.Name, node.Name, c.Version))
			}
		}
	}
	return problems
}

// hasRemoteNode reports whether a node runs core without management.
func hasRemoteNode(status Status) bool {
	for _, node := range status.Nodes {
		if node.Role != "" && node.Role != "mgmt" {
			return true
		}
		if node.Role == "" && !hasComponent(node, "mgmt") && hasComponent(node, "core") {
			return true
		}
	}
	return false
}

func hasComponent(node NodeStatus, name string) bool {
	return slices.ContainsFunc(node.Components, func(c ComponentStatus) bool { return c.Name == name })
}

// failedNodes returns the nodes with a component whose reload failed.
func failedNodes(status Status) []string {
	var nodes []string
	for _, node := range status.Nodes {
		for _, c := range node.Components {
			if c.ReloadSuccess == ReloadFailed {
				nodes = append(nodes, node.Name)
				break
			}
		}
	}
	return nodes
}

func reapplyStep(section string) Step {
	return Step{
		ID: StepReapplyFailed, Title: "Apply the configuration again where a reload failed",
		Section: section, User: UserRoot,
		Action:  "GET status; POST config apply when a node's reload success is FAILED",
		Changes: "applies the configuration again on nodes whose reload failed",
		Run:     reapplyFailed,
	}
}

func reapplyFailed(ctx context.Context, e *Env) error {
	status, err := e.Deps.API.Status(ctx)
	if err != nil {
		return fmt.Errorf("reading the management API status: %w", err)
	}
	failed := failedNodes(status)
	if len(failed) > 0 {
		e.Infof("reload success is FAILED on %s: applying the configuration again", strings.Join(failed, ", "))
		if err := e.Deps.API.Apply(ctx, e.Options.applyTimeout(e.Path)); err != nil {
			return fmt.Errorf("applying the configuration again for %s: %w", strings.Join(failed, ", "), err)
		}
		status, err = e.Deps.API.Status(ctx)
		if err != nil {
			return fmt.Errorf("reading the management API status after the apply: %w", err)
		}
		if still := failedNodes(status); len(still) > 0 {
			return fmt.Errorf("reload success is still FAILED on %s after a config apply: see the node's logs, fix the cause and run a config apply", strings.Join(still, ", "))
		}
		e.State.Reapplied = failed
	}

	if e.DryRun {
		// The install that re-hashes the password did not run.
		return nil
	}
	scheme, err := passwordHashScheme(ctx, e)
	if err != nil {
		e.Warnf("cannot tell the admin password's hash scheme: %v", err)
		return nil
	}
	e.State.HashScheme = scheme
	if scheme != HashBcrypt && !e.Options.KeepPasswordHash {
		e.Warnf("the admin password hash in %s is %s, not bcrypt: set the password again in the UI to re-hash it", UsersHtpass, scheme)
	}
	return nil
}

// passwordHashScheme reads the admin user's hash scheme from users.htpass.
func passwordHashScheme(ctx context.Context, e *Env) (string, error) {
	data, err := e.Deps.Files.ReadFile(ctx, UsersHtpass)
	if err != nil {
		return "", err
	}
	user := e.Options.AdminUser
	if user == "" {
		user = "admin"
	}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		name, hash, ok := strings.Cut(scanner.Text(), ":")
		if !ok || name != user {
			continue
		}
		return hashScheme(hash), nil
	}
	return "", fmt.Errorf("user %q is not in %s", user, UsersHtpass)
}

func hashScheme(hash string) string {
	switch {
	case strings.HasPrefix(hash, "$2y$"), strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"):
		return HashBcrypt
	case strings.HasPrefix(hash, "{SHA}"):
		return HashSHA1
	}
	return HashUnknown
}
