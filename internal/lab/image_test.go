package lab

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/internal/testenv"
)

func TestMirrorFromFiles(t *testing.T) {
	tests := []struct {
		name string
		dir  string
		want string
	}{
		{"deb822 skips security and deb-src", "testdata/apt", "http://mirror.example.test/debian"},
		{"one-line format with options", "testdata/apt-oneline", "http://oneline.example.test/debian"},
		{"no sources", "testdata/missing", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mirrorFromFiles(filepath.Join(tt.dir, "sources.list.d"), filepath.Join(tt.dir, "sources.list"))
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestNodeImageKeyFollowsPackages(t *testing.T) {
	before := NodeImageKey()
	saved := NodePackages
	t.Cleanup(func() { NodePackages = saved })

	NodePackages = append(append([]string{}, saved...), "less")
	assert.NotEqual(t, before, NodeImageKey(), "adding a package must change the key")

	NodePackages = saved
	assert.Equal(t, before, NodeImageKey(), "the key must be stable")
	assert.Len(t, before, 16)
}

func TestBuildUnreachableMirror(t *testing.T) {
	requireRootDebootstrap(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Port 1 on loopback has no listener, so every download is refused.
	b := NodeImage{Mirror: "http://127.0.0.1:1/debian", CacheDir: t.TempDir()}
	err := b.build(ctx, nil, "pasupgrade-lab-node:never")
	require.ErrorIs(t, err, ErrMirrorUnreachable)
	assert.Contains(t, err.Error(), "http://127.0.0.1:1/debian")

	leftovers, _ := filepath.Glob(filepath.Join(b.CacheDir, "node-build-*"))
	assert.Empty(t, leftovers, "the build tree must be removed after a failure")
}

// TestBuildStalledMirror checks that a mirror that accepts connections
// but never answers fails the build with ErrMirrorUnreachable instead of
// stalling it under wget's default timeouts.
func TestBuildStalledMirror(t *testing.T) {
	requireRootDebootstrap(t)
	saved := downloadTimeout
	downloadTimeout = 2 * time.Second
	t.Cleanup(func() { downloadTimeout = saved })

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer listener.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			held = append(held, conn)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mirror := "http://" + listener.Addr().String() + "/debian"
	b := NodeImage{Mirror: mirror, CacheDir: t.TempDir()}
	err = b.build(ctx, nil, "pasupgrade-lab-node:never")
	require.ErrorIs(t, err, ErrMirrorUnreachable)
	assert.Contains(t, err.Error(), mirror)
}

func TestEnsureNodeImage(t *testing.T) {
	cli := connectForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	ref, err := EnsureNodeImage(ctx, cli)
	require.NoError(t, err)
	assert.Equal(t, NodeImageRef(), ref)
	first, err := cli.ImageInspect(ctx, ref)
	require.NoError(t, err)
	assert.Equal(t, NodeImageKey(), first.Config.Labels["pasupgrade.lab.node-key"])

	again, err := EnsureNodeImage(ctx, cli)
	require.NoError(t, err)
	second, err := cli.ImageInspect(ctx, again)
	require.NoError(t, err)
	assert.Equal(t, first.ID, second.ID, "a second call must reuse the cached image")
}

func requireRootDebootstrap(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "building the node image needs root for debootstrap")
	}
	if _, err := os.Stat("/usr/sbin/debootstrap"); err != nil {
		testenv.SkipOrFail(t, "debootstrap is not installed; run 'make lab-deps'")
	}
}

// connectForTest returns a client of the lab engine, or skips the test as
// testenv.DockerHost does. The client is closed when the test ends.
func connectForTest(t *testing.T) *client.Client {
	t.Helper()
	testenv.DockerHost(t)
	requireRootDebootstrap(t)
	cli, err := Connect(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli
}

func TestSplitRef(t *testing.T) {
	tests := []struct {
		ref, repo, tag string
	}{
		{"pasupgrade-lab-node:abc", "pasupgrade-lab-node", "abc"},
		{"pasupgrade-lab-x/pas-upgrade-tool:4.9.0", "pasupgrade-lab-x/pas-upgrade-tool", "4.9.0"},
		{"localhost:5000/tool", "localhost:5000/tool", "latest"},
		{"localhost:5000/tool:1", "localhost:5000/tool", "1"},
		{"plain", "plain", "latest"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			repo, tag := splitRef(tt.ref)
			assert.Equal(t, tt.repo, repo)
			assert.Equal(t, tt.tag, tag)
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	assert.Equal(t, "/tmp/a b", unescapeMount(`/tmp/a\040b`))
	assert.Equal(t, "/tmp/tab\there", unescapeMount(`/tmp/tab\011here`))
	assert.Equal(t, `/tmp/trailing\`, unescapeMount(`/tmp/trailing\`))
}

func TestRemoveTreeWithoutMounts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tree")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "proc", "deep"), 0o755))
	mounts, err := mountsUnder(dir)
	require.NoError(t, err)
	assert.Empty(t, mounts)
	require.NoError(t, removeTree(dir))
	_, err = os.Stat(dir)
	assert.True(t, os.IsNotExist(err))
}
