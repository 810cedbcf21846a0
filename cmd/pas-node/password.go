package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// setPasswordCommand stores a user's password hash in the mgmt users file.
// The password is the first line of stdin, so it never shows in argv; the
// maintainer scripts pipe the debconf value in with the shell's printf
// builtin.
func setPasswordCommand(env *environment, args []string) error {
	flags := flag.NewFlagSet("set-password", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	scheme := flags.String("scheme", "bcrypt", "hash scheme: sha (4.8.0) or bcrypt (4.9.0)")
	user := flags.String("user", "admin", "user name")
	file := flags.String("file", "/opt/balasys/etc/mgmt/users.htpass", "users file")
	if err := flags.Parse(args); err != nil || flags.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
	}

	password, err := bufio.NewReader(env.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the password from stdin: %w", err)
	}
	password = strings.TrimRight(password, "\r\n")
	if password == "" {
		return errors.New("the password on stdin is empty; give it as the first line of stdin")
	}
	hash, err := hashPassword(*scheme, password)
	if err != nil {
		return err
	}
	return setUserHash(env.path(*file), *user, hash)
}

// hashPassword hashes password as htpasswd does: "sha" gives {SHA} with
// base64 SHA-1 (htpasswd -s), "bcrypt" gives a $2y$ hash (htpasswd -B).
func hashPassword(scheme, password string) (string, error) {
	switch scheme {
	case "sha":
		sum := sha1.Sum([]byte(password))
		return "{SHA}" + base64.StdEncoding.EncodeToString(sum[:]), nil
	case "bcrypt":
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
		if err != nil {
			return "", fmt.Errorf("hashing the password: %w", err)
		}
		// Go's bcrypt writes $2a$ and htpasswd -B writes $2y$. Both prefixes
		// name the same algorithm, so only the prefix changes.
		return "$2y$" + strings.TrimPrefix(string(hash), "$2a$"), nil
	}
	return "", fmt.Errorf("%w: hash scheme %q is not sha or bcrypt", errUsage, scheme)
}

// setUserHash replaces user's line in an htpasswd file, or appends one.
func setUserHash(file, user, hash string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading the users file: %w", err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	entry := user + ":" + hash + "\n"
	found := false
	for i, line := range lines {
		if name, _, ok := strings.Cut(line, ":"); ok && name == user {
			lines[i] = entry
			found = true
		}
	}
	text := strings.Join(lines, "")
	if !found {
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		text += entry
	}
	return replaceFile(file, []byte(text))
}
