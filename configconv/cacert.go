package configconv

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrInvalidCACert is returned for a CA bundle that is not PEM or lacks
// part of its chain.
var ErrInvalidCACert = errors.New("configconv: invalid CA bundle")

// PlaceCACert checks the CA bundle at path and makes sure it is inside
// workDir, because the tool's container can read nothing else. It returns the
// bundle's name relative to workDir, for the tool's --cacert option. A
// bundle outside workDir is copied into it under its base name; an existing
// different file of that name is an error, never overwritten.
//
// The bundle must hold only PEM certificates that form complete chains:
// every certificate's issuer is in the bundle, up to a self-signed root.
func PlaceCACert(path, workDir string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading the CA bundle: %w", err)
	}
	if err := CheckCABundle(data); err != nil {
		return "", fmt.Errorf("CA bundle %s: %w", path, err)
	}

	absPath, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", path, err)
	}
	absWork, err := filepath.Abs(workDir)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", workDir, err)
	}
	rel, err := filepath.Rel(absWork, absPath)
	if err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		if realRel, ok := resolvedInside(absPath, absWork); ok {
			return realRel, nil
		}
	}

	name := filepath.Base(absPath)
	dest := filepath.Join(absWork, name)
	if info, err := os.Lstat(dest); err == nil && info.Mode()&os.ModeSymlink != 0 {
		return "", fmt.Errorf("CA bundle %s: %s is a symbolic link to a file outside the working directory, "+
			"which the container cannot see; copy the file into the working directory instead", path, dest)
	}
	existing, err := os.ReadFile(dest)
	switch {
	case err == nil && bytes.Equal(existing, data):
		return name, nil
	case err == nil:
		return "", fmt.Errorf("copying the CA bundle %s into the working directory: %s exists with other content; remove or rename it",
			path, dest)
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("copying the CA bundle into the working directory: %w", err)
	}
	if err := os.WriteFile(dest, data, 0o644); err != nil {
		return "", fmt.Errorf("copying the CA bundle into the working directory: %w", err)
	}
	return name, nil
}

// resolvedInside returns path's location relative to dir after resolving
// symbolic links, and whether it is inside dir. The container cannot
// follow a link that points out of the working directory, nor an absolute
// link, so the tool gets the resolved name.
func resolvedInside(path, dir string) (string, bool) {
	realPath, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", false
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", false
	}
	rel, err := filepath.Rel(realDir, realPath)
	return rel, err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// CheckCABundle checks that data holds only PEM certificates forming
// complete chains up to self-signed roots. Errors wrap ErrInvalidCACert.
func CheckCABundle(data []byte) error {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("%w: it contains a %q block; it must contain only certificates", ErrInvalidCACert, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("%w: certificate %d: %v", ErrInvalidCACert, len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return fmt.Errorf("%w: it contains data that is not PEM; convert it with 'openssl x509 -outform PEM'", ErrInvalidCACert)
	}
	if len(certs) == 0 {
		return fmt.Errorf("%w: it contains no PEM certificate", ErrInvalidCACert)
	}

	for _, cert := range certs {
		if isSelfSigned(cert) {
			continue
		}
		if !hasIssuer(cert, certs) {
			return fmt.Errorf("%w: the issuer %q of %q is missing; the bundle must contain the full chain up to the root",
				ErrInvalidCACert, cert.Issuer.String(), cert.Subject.String())
		}
	}
	return nil
}

// isSelfSigned reports whether cert is signed by its own key. The check
// only tests whether the bundle is complete, so it uses CheckSignature and
// accepts two roots that CheckSignatureFrom rejects: a SHA-1
// self-signature, which Go's TLS client never checks on a root, and a
// self-signed server certificate that is not a CA, which it trusts when
// the server presents that certificate.
func isSelfSigned(cert *x509.Certificate) bool {
	return bytes.Equal(cert.RawIssuer, cert.RawSubject) && signedBy(cert, cert)
}

func hasIssuer(cert *x509.Certificate, certs []*x509.Certificate) bool {
	for _, candidate := range certs {
		if candidate != cert && bytes.Equal(candidate.RawSubject, cert.RawIssuer) && signedBy(cert, candidate) {
			return true
		}
	}
	return false
}

// signedBy reports whether issuer's key made cert's signature.
func signedBy(cert, issuer *x509.Certificate) bool {
	return issuer.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil
}
