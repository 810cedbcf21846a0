package configconv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// newTestCA makes a CA certificate signed by parent, or self-signed when
// parent is nil.
func newTestCA(t *testing.T, name string, parent *testCA) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	signer, signerKey := template, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, template, signer, &key.PublicKey, signerKey)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// newSelfSignedServerCert makes a self-signed certificate that is not a
// CA, as some servers generate for themselves.
func newSelfSignedServerCert(t *testing.T, name string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestCheckCABundle(t *testing.T) {
	root := newTestCA(t, "Test Root", nil)
	intermediate := newTestCA(t, "Test Intermediate", root)
	other := newTestCA(t, "Other Root", nil)
	keyBlock := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}})
	// Made with: openssl req -x509 -newkey rsa:2048 -sha1 -days 36500
	sha1Root := readFixture(t, "sha1-root.pem")

	tests := []struct {
		name    string
		bundle  []byte
		wantErr string
	}{
		{"root only", root.pem, ""},
		{"full chain", append(append([]byte{}, intermediate.pem...), root.pem...), ""},
		{"two roots", append(append([]byte{}, root.pem...), other.pem...), ""},
		{"self-signed server certificate", newSelfSignedServerCert(t, "mgmt.example"), ""},
		{"root self-signed with SHA-1", sha1Root, ""},
		{"intermediate without root", intermediate.pem, `the issuer "CN=Test Root" of "CN=Test Intermediate" is missing`},
		{"intermediate with wrong root", append(append([]byte{}, intermediate.pem...), other.pem...), `issuer "CN=Test Root"`},
		{"empty", nil, "no PEM certificate"},
		{"DER instead of PEM", root.cert.Raw, "not PEM"},
		{"private key inside", append(append([]byte{}, root.pem...), keyBlock...), `"EC PRIVATE KEY" block`},
		{"trailing garbage", append(append([]byte{}, root.pem...), "junk"...), "not PEM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckCABundle(tt.bundle)
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidCACert)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestPlaceCACert(t *testing.T) {
	root := newTestCA(t, "Test Root", nil)
	other := newTestCA(t, "Other Root", nil)

	t.Run("outside is copied", func(t *testing.T) {
		work := t.TempDir()
		src := filepath.Join(t.TempDir(), "ca.pem")
		require.NoError(t, os.WriteFile(src, root.pem, 0o600))

		name, err := PlaceCACert(src, work)
		require.NoError(t, err)
		assert.Equal(t, "ca.pem", name)
		copied, err := os.ReadFile(filepath.Join(work, "ca.pem"))
		require.NoError(t, err)
		assert.Equal(t, root.pem, copied)

		name, err = PlaceCACert(src, work)
		require.NoError(t, err, "a second run finds the same copy")
		assert.Equal(t, "ca.pem", name)
	})

	t.Run("inside is used in place", func(t *testing.T) {
		work := t.TempDir()
		require.NoError(t, os.Mkdir(filepath.Join(work, "certs"), 0o755))
		src := filepath.Join(work, "certs", "ca.pem")
		require.NoError(t, os.WriteFile(src, root.pem, 0o600))

		name, err := PlaceCACert(src, work)
		require.NoError(t, err)
		assert.Equal(t, filepath.Join("certs", "ca.pem"), name)
		entries, err := os.ReadDir(work)
		require.NoError(t, err)
		assert.Len(t, entries, 1, "nothing is copied")
	})

	t.Run("link inside pointing out", func(t *testing.T) {
		work := t.TempDir()
		src := filepath.Join(t.TempDir(), "real.pem")
		require.NoError(t, os.WriteFile(src, root.pem, 0o600))
		link := filepath.Join(work, "link.pem")
		require.NoError(t, os.Symlink(src, link))

		_, err := PlaceCACert(link, work)
		require.Error(t, err, "the container cannot follow the link")
		assert.Contains(t, err.Error(), "is a symbolic link to a file outside the working directory")
	})

	t.Run("absolute link inside to inside", func(t *testing.T) {
		work := t.TempDir()
		real := filepath.Join(work, "real.pem")
		require.NoError(t, os.WriteFile(real, root.pem, 0o600))
		require.NoError(t, os.Symlink(real, filepath.Join(work, "link.pem")))

		name, err := PlaceCACert(filepath.Join(work, "link.pem"), work)
		require.NoError(t, err)
		assert.Equal(t, "real.pem", name, "the container cannot follow an absolute link")
	})

	t.Run("different file of same name", func(t *testing.T) {
		work := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(work, "ca.pem"), other.pem, 0o644))
		src := filepath.Join(t.TempDir(), "ca.pem")
		require.NoError(t, os.WriteFile(src, root.pem, 0o600))

		_, err := PlaceCACert(src, work)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "exists with other content; remove or rename it")
		kept, err := os.ReadFile(filepath.Join(work, "ca.pem"))
		require.NoError(t, err)
		assert.Equal(t, other.pem, kept, "the existing file is never overwritten")
	})

	t.Run("invalid bundle", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "ca.pem")
		require.NoError(t, os.WriteFile(src, []byte("not a cert"), 0o600))
		_, err := PlaceCACert(src, t.TempDir())
		assert.ErrorIs(t, err, ErrInvalidCACert)
		assert.Contains(t, err.Error(), src)
	})

	t.Run("missing bundle", func(t *testing.T) {
		_, err := PlaceCACert(filepath.Join(t.TempDir(), "missing.pem"), t.TempDir())
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
}

func TestToolPassesCACertCopy(t *testing.T) {
	root := newTestCA(t, "Test Root", nil)
	src := filepath.Join(t.TempDir(), "bundle.pem")
	require.NoError(t, os.WriteFile(src, root.pem, 0o600))
	work := t.TempDir()
	fake := newFakeToolRunner(t)
	fake.expect(writes(DefaultExportFile), "--cacert", "bundle.pem", "pre-upgrade")

	_, err := (&Tool{Runner: fake, WorkDir: work, CACert: src, Password: "pw"}).PreUpgrade(t.Context())
	require.NoError(t, err)
	assert.FileExists(t, filepath.Join(work, "bundle.pem"))
}
