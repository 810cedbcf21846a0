package pasupgrade_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pasops/pasupgrade/pasupgrade"
	"github.com/pasops/pasupgrade/runner"
)

// sshServer is a loopback SSH server that records each exec request and
// replies "ran: COMMAND" with exit status 3 when the command holds "fail".
type sshServer struct {
	addr     string
	hostKey  ssh.PublicKey
	mu       sync.Mutex
	commands []string
}

func newKey(t *testing.T) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	block, err := ssh.MarshalPrivateKey(priv, "")
	require.NoError(t, err)
	return signer, pem.EncodeToMemory(block)
}

func startSSHServer(t *testing.T, clientKey ssh.PublicKey) *sshServer {
	t.Helper()
	hostSigner, _ := newKey(t)
	config := &ssh.ServerConfig{PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		if (meta.User() == "pas" || meta.User() == "ops") && string(key.Marshal()) == string(clientKey.Marshal()) {
			return nil, nil
		}
		return nil, assert.AnError
	}}
	config.AddHostKey(hostSigner)
	// A second host key of a type the client prefers but known_hosts does
	// not record: the client must ask for the recorded type only.
	ecdsaKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ecdsaSigner, err := ssh.NewSignerFromKey(ecdsaKey)
	require.NoError(t, err)
	config.AddHostKey(ecdsaSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	srv := &sshServer{addr: ln.Addr().String(), hostKey: hostSigner.PublicKey()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.serve(conn, config)
		}
	}()
	return srv
}

func (s *sshServer) serve(conn net.Conn, config *ssh.ServerConfig) {
	_, chans, reqs, err := ssh.NewServerConn(conn, config)
	if err != nil {
		conn.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	for newChan := range chans {
		ch, requests, err := newChan.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer ch.Close()
			for req := range requests {
				if req.Type != "exec" {
					req.Reply(false, nil)
					continue
				}
				command := string(req.Payload[4:])
				s.mu.Lock()
				s.commands = append(s.commands, command)
				s.mu.Unlock()
				req.Reply(true, nil)
				ch.Write([]byte("ran: " + command + "\n"))
				code := uint32(0)
				if strings.Contains(command, "fail") {
					ch.Stderr().Write([]byte("it failed\n"))
					code = 3
				}
				status := make([]byte, 4)
				binary.BigEndian.PutUint32(status, code)
				ch.SendRequest("exit-status", false, status)
				return
			}
		}()
	}
}

func TestRemoteRunsOverSSH(t *testing.T) {
	clientSigner, clientPEM := newKey(t)
	srv := startSSHServer(t, clientSigner.PublicKey())
	access := pasupgrade.RemoteAccess{
		User: "pas", Key: clientPEM,
		KnownHosts: []byte(knownhosts.Line([]string{knownhosts.Normalize(srv.addr)}, srv.hostKey) + "\n"),
	}
	remote := pasupgrade.Remote{}
	ctx := context.Background()

	res, err := remote.Run(ctx, access, srv.addr, runner.Command{
		Argv: []string{"systemctl", "stop", "proxedo-api-security"}, User: "root",
		Env: []string{"DEBIAN_FRONTEND=noninteractive"},
	})
	require.NoError(t, err)
	assert.Equal(t, "ran: sudo -n DEBIAN_FRONTEND=noninteractive systemctl stop proxedo-api-security\n", string(res.Stdout))

	_, err = remote.Run(ctx, access, srv.addr, runner.Command{Argv: []string{"sh", "-c", "fail it's"}})
	var exit *runner.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 3, exit.ExitCode)
	assert.Contains(t, exit.Tail, "it failed")
	assert.Equal(t, `sh -c 'fail it'\''s'`, srv.commands[1])
}

func TestRemoteRejectsUnknownHostKey(t *testing.T) {
	clientSigner, clientPEM := newKey(t)
	srv := startSSHServer(t, clientSigner.PublicKey())
	other, _ := newKey(t)
	access := pasupgrade.RemoteAccess{
		User: "pas", Key: clientPEM,
		KnownHosts: []byte(knownhosts.Line([]string{knownhosts.Normalize(srv.addr)}, other.PublicKey()) + "\n"),
	}
	_, err := pasupgrade.Remote{}.Run(context.Background(), access, srv.addr, runner.Command{Argv: []string{"true"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SSH handshake with "+srv.addr)
	assert.Empty(t, srv.commands, "no command runs on a host with an unknown key")

	access.KnownHosts = nil
	_, err = pasupgrade.Remote{}.Run(context.Background(), access, srv.addr, runner.Command{Argv: []string{"true"}})
	assert.ErrorContains(t, err, "known_hosts is empty")
}

// A host with the inventory's ansible_user logs in as that user, and runs
// commands meant for pas through sudo.
func TestRemoteLogsInAsInventoryUser(t *testing.T) {
	clientSigner, clientPEM := newKey(t)
	srv := startSSHServer(t, clientSigner.PublicKey())
	access := pasupgrade.RemoteAccess{
		User: "pas", Key: clientPEM,
		KnownHosts: []byte(knownhosts.Line([]string{knownhosts.Normalize(srv.addr)}, srv.hostKey) + "\n"),
	}
	res, err := pasupgrade.Remote{}.Run(context.Background(), access, "ops@"+srv.addr,
		runner.Command{Argv: []string{"pas-update"}, User: "pas"})
	require.NoError(t, err)
	assert.Equal(t, "ran: sudo -n -u pas pas-update\n", string(res.Stdout))

	_, err = pasupgrade.Remote{}.Run(context.Background(), access, "nobody@"+srv.addr,
		runner.Command{Argv: []string{"true"}})
	require.ErrorContains(t, err, "as nobody")
}
