package pasupgrade

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pasops/pasupgrade/runner"
)

// Remote is the RemoteNodes of a real installation: pas-mgmt-deploy-core
// through DeployCommand, and other commands over SSH with the pas user's
// key, checking each host against the pas user's known_hosts.
type Remote struct {
	DeployCommand
	// Port is the SSH port used when a host names none; zero means 22.
	Port int
	// DialTimeout bounds connecting and the SSH handshake; zero means 30
	// seconds.
	DialTimeout time.Duration
}

// Run runs cmd on host over SSH, logging in as access.User, or as USER
// when host is "USER@HOST[:PORT]". A cmd.User other than the login user runs
// through "sudo -n", so a password prompt fails instead of hanging; root
// needs no "-u". Env entries are given to sudo as VAR=value arguments,
// which the sudoers rule must allow with SETENV, or set with env(1) when no
// sudo is needed. The host key must be in access.KnownHosts.
func (r Remote) Run(ctx context.Context, access RemoteAccess, host string, cmd runner.Command) (runner.Result, error) {
	start := time.Now()
	if user, addr, ok := strings.Cut(host, "@"); ok {
		// The inventory's ansible_user, as InventoryHosts writes it.
		access.User, host = user, addr
	}
	client, err := r.dial(ctx, access, host)
	if err != nil {
		return runner.Result{ExitCode: -1}, err
	}
	defer client.Close()
	session, err := client.NewSession()
	if err != nil {
		return runner.Result{ExitCode: -1}, fmt.Errorf("opening an SSH session on %s: %w", host, err)
	}
	defer session.Close()

	var stdout, stderr bytes.Buffer
	session.Stdout, session.Stderr, session.Stdin = &stdout, &stderr, cmd.Stdin
	remote := cmd
	if cmd.SurviveCaller {
		remote.Argv = runner.SurvivorArgv(cmd.Argv)
	}
	line := remoteCommandLine(access.User, remote)
	done := make(chan error, 1)
	go func() { done <- session.Run(line) }()
	select {
	case <-ctx.Done():
		client.Close()
		<-done
		return runner.Result{ExitCode: -1}, fmt.Errorf("running %s on %s: %w", cmd.String(), host, ctx.Err())
	case err = <-done:
	}

	res := runner.Result{
		Stdout:   []byte(runner.Redact(stdout.String(), cmd.Secrets)),
		Stderr:   []byte(runner.Redact(stderr.String(), cmd.Secrets)),
		Duration: time.Since(start),
	}
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitStatus()
		shown := cmd
		shown.Argv = append([]string{"ssh", access.User + "@" + host}, cmd.Argv...)
		return res, runner.NewExitError(shown, res)
	default:
		res.ExitCode = -1
		return res, fmt.Errorf("running %s on %s: %w", cmd.String(), host, err)
	}
}

func (r Remote) dial(ctx context.Context, access RemoteAccess, host string) (*ssh.Client, error) {
	signer, err := ssh.ParsePrivateKey(access.Key)
	if err != nil {
		return nil, fmt.Errorf("reading the %s user's SSH key: %w", access.User, err)
	}
	check, err := hostKeyCallback(access.KnownHosts)
	if err != nil {
		return nil, err
	}
	timeout := r.DialTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	addr := host
	if _, _, err := net.SplitHostPort(host); err != nil {
		port := r.Port
		if port == 0 {
			port = 22
		}
		addr = net.JoinHostPort(host, fmt.Sprint(port))
	}
	dialCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dialCtx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	config := &ssh.ClientConfig{
		User: access.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: check, Timeout: timeout,
		HostKeyAlgorithms: knownKeyAlgorithms(access.KnownHosts),
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, config)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("SSH handshake with %s as %s: %w", addr, access.User, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// hostKeyCallback checks host keys against known_hosts content. The
// knownhosts package reads only files, so the content goes through a
// temporary file that is removed at once.
func hostKeyCallback(known []byte) (ssh.HostKeyCallback, error) {
	if len(bytes.TrimSpace(known)) == 0 {
		return nil, errors.New("the pas user's known_hosts is empty: connect once with ssh as pas to record the remote host keys")
	}
	f, err := os.CreateTemp("", "pasupgrade-known-hosts-*")
	if err != nil {
		return nil, fmt.Errorf("preparing known_hosts: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(known); err != nil {
		f.Close()
		return nil, fmt.Errorf("preparing known_hosts: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("preparing known_hosts: %w", err)
	}
	check, err := knownhosts.New(f.Name())
	if err != nil {
		return nil, fmt.Errorf("parsing the pas user's known_hosts: %w", err)
	}
	return check, nil
}

// knownKeyAlgorithms returns the host key algorithms of the keys in
// known_hosts. Without them the server may offer a key type known_hosts
// does not record for it, and the check reports a mismatch.
func knownKeyAlgorithms(known []byte) []string {
	var algorithms []string
	add := func(names ...string) {
		for _, name := range names {
			if !slices.Contains(algorithms, name) {
				algorithms = append(algorithms, name)
			}
		}
	}
	rest := known
	for len(rest) > 0 {
		_, _, key, _, next, err := ssh.ParseKnownHosts(rest)
		if err != nil {
			break
		}
		rest = next
		if key.Type() == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
			continue
		}
		add(key.Type())
	}
	return algorithms
}

// remoteCommandLine quotes cmd for the remote shell, with sudo or env(1)
// in front as needed. Sudo runs the command itself, not env(1), so that a
// sudoers rule naming the command matches.
func remoteCommandLine(login string, cmd runner.Command) string {
	var words []string
	switch {
	case cmd.User == "" || cmd.User == login:
		if len(cmd.Env) > 0 {
			words = append(words, "env")
		}
	case cmd.User == UserRoot:
		words = append(words, "sudo", "-n")
	default:
		words = append(words, "sudo", "-n", "-u", cmd.User)
	}
	words = append(words, cmd.Env...)
	words = append(words, cmd.Argv...)
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = shellQuote(w)
	}
	return strings.Join(quoted, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@,+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
