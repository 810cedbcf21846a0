package mgmtapitest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Server is a Handler served over loopback.
type Server struct {
	*Handler

	// URL is the base URL, such as "http://127.0.0.1:41234".
	URL string

	// CACertPEM is the PEM of the CA that signed the server's certificate,
	// for servers started with TLS. It is nil for plain HTTP.
	CACertPEM []byte

	srv     *httptest.Server
	tempDir string
}

// NewServer serves a new Handler on loopback, over HTTPS with a generated
// CA when useTLS is true. A missing opts.StateDir becomes a temporary
// directory that Close removes. The caller must call Close. Tests use
// Start or StartTLS, which close the server when the test ends.
func NewServer(opts Options, useTLS bool) (*Server, error) {
	s := &Server{}
	if opts.StateDir == "" {
		dir, err := os.MkdirTemp("", "mgmtapitest-*")
		if err != nil {
			return nil, fmt.Errorf("mgmtapitest: %w", err)
		}
		s.tempDir, opts.StateDir = dir, dir
	}
	h, err := NewHandler(opts)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Handler = h
	s.srv = httptest.NewUnstartedServer(h)
	// Handshake failures are expected in tests of wrong CAs.
	s.srv.Config.ErrorLog = slog.NewLogLogger(h.log.Handler(), slog.LevelDebug)
	if !useTLS {
		s.srv.Start()
		s.URL = s.srv.URL
		return s, nil
	}

	ca, err := NewCA()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("mgmtapitest: %w", err)
	}
	cert, err := ca.Issue("localhost", "127.0.0.1", "::1")
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("mgmtapitest: %w", err)
	}
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.srv.StartTLS()
	s.URL = s.srv.URL
	s.CACertPEM = ca.CertPEM
	return s, nil
}

// Close stops the server, waits for running requests and removes the
// temporary state directory. It is safe to call twice.
func (s *Server) Close() {
	if s.srv != nil && s.srv.URL != "" {
		s.srv.Close()
	}
	if s.tempDir != "" {
		os.RemoveAll(s.tempDir)
	}
}

// Start serves a new Handler over plain HTTP on loopback until the test
// ends. A missing opts.StateDir becomes a temporary directory of the test.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	return start(t, opts, false)
}

// StartTLS serves a new Handler over HTTPS on loopback until the test
// ends, with a certificate for 127.0.0.1, ::1 and localhost signed by a CA
// generated for this server. Clients trust it through CACertPEM or CAFile.
func StartTLS(t testing.TB, opts Options) *Server {
	t.Helper()
	return start(t, opts, true)
}

func start(t testing.TB, opts Options, useTLS bool) *Server {
	t.Helper()
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	s, err := NewServer(opts, useTLS)
	if err != nil {
		t.Fatalf("mgmtapitest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// CAFile writes CACertPEM to a file in a temporary directory of the test
// and returns its path.
func (s *Server) CAFile(t testing.TB) string {
	t.Helper()
	if s.CACertPEM == nil {
		t.Fatal("mgmtapitest: CAFile needs a server started with TLS")
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, s.CACertPEM, 0o644); err != nil {
		t.Fatalf("mgmtapitest: %v", err)
	}
	return path
}

// CA is a certificate authority generated for tests and for the lab.
type CA struct {
	// CertPEM is the CA certificate in PEM.
	CertPEM []byte

	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA generates a CA with a new P-256 key, valid for one day.
func NewCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "pasupgrade test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		cert:    cert,
		key:     key,
	}, nil
}

// Issue returns a server certificate for hosts (DNS names or IP
// addresses) signed by ca.
func (ca *CA) Issue(hosts ...string) (tls.Certificate, error) {
	certPEM, keyPEM, err := ca.IssuePEM(hosts...)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// IssuePEM returns a server certificate for hosts and its key, in PEM.
func (ca *CA) IssuePEM(hosts ...string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating a server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, host := range hosts {
		if ip := net.ParseIP(host); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating a server certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}
