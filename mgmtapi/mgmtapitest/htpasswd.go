package mgmtapitest

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// checkHtpasswd reports whether password matches the entry of user in the
// htpasswd file at path. It reads the file at each call, as the management
// component does, so a package upgrade that rewrites the file takes effect
// at the next login. It accepts the "{SHA}" hashes of "htpasswd -s" and the
// bcrypt hashes ("$2y$", "$2a$", "$2b$") of "htpasswd -B".
func checkHtpasswd(path, user, password string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("reading the password file: %w", err)
	}
	defer f.Close()

	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		name, hash, ok := strings.Cut(strings.TrimSpace(scanner.Text()), ":")
		if !ok || name != user {
			continue
		}
		return matchHash(hash, password)
	}
	if err := scanner.Err(); err != nil {
		return false, fmt.Errorf("reading the password file %s: %w", path, err)
	}
	return false, nil
}

// matchHash compares password with one htpasswd hash.
func matchHash(hash, password string) (bool, error) {
	switch {
	case strings.HasPrefix(hash, "{SHA}"):
		sum := sha1.Sum([]byte(password))
		want := []byte(strings.TrimPrefix(hash, "{SHA}"))
		got := []byte(base64.StdEncoding.EncodeToString(sum[:]))
		return subtle.ConstantTimeCompare(want, got) == 1, nil
	case strings.HasPrefix(hash, "$2y$"), strings.HasPrefix(hash, "$2a$"),
		strings.HasPrefix(hash, "$2b$"):
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		return err == nil, nil
	default:
		// The hash is not quoted: an htpasswd -p entry is the password itself.
		return false, fmt.Errorf("unsupported password hash format; use htpasswd -s or -B")
	}
}

// HtpasswdSHA returns an htpasswd line for user in the "{SHA}" format that
// PAS 4.8.0 writes.
func HtpasswdSHA(user, password string) string {
	sum := sha1.Sum([]byte(password))
	return user + ":{SHA}" + base64.StdEncoding.EncodeToString(sum[:]) + "\n"
}

// HtpasswdBcrypt returns an htpasswd line for user in the "$2y$" bcrypt
// format that PAS 4.9.0 writes, at the minimum cost to keep tests fast.
func HtpasswdBcrypt(user, password string) (string, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return "", err
	}
	hash = bytes.Replace(hash, []byte("$2a$"), []byte("$2y$"), 1)
	return user + ":" + string(hash) + "\n", nil
}
