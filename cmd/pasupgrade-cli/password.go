package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// passwordEnv is the environment variable that may hold the admin password.
const passwordEnv = "PAS_ADMIN_PASSWORD"

// maxPasswordLine bounds the line read as a password.
const maxPasswordLine = 4096

// readPasswordNoEcho reads a line from the terminal without echoing it. It
// is a variable so tests can replace the terminal.
var readPasswordNoEcho = readTerminalPassword

// resolvePassword returns the admin password from, in this order, the file
// passwordFile ("-" for the first line of stdin), the PAS_ADMIN_PASSWORD
// environment variable, or a prompt without echo when stdin is a terminal.
// There is deliberately no flag that takes the password itself, because
// argv is visible to every user of the machine. The variable is removed
// from the process environment at the first call, whichever source wins.
func resolvePassword(a *app, passwordFile, user string) (string, error) {
	// Commands run later (dpkg, docker, the pas-* tools) inherit the
	// environment: remove the password from it.
	value, ok := os.LookupEnv(passwordEnv)
	os.Unsetenv(passwordEnv)
	if passwordFile != "" {
		return readPasswordFile(a, passwordFile)
	}
	if ok {
		if value == "" {
			return "", usageErrorf("%s is set but empty; set it to the admin password or unset it", passwordEnv)
		}
		a.logger.Debug("admin password taken from the environment", "variable", passwordEnv)
		return value, nil
	}
	if !a.streams.InIsTerminal {
		return "", usageErrorf("no admin password for %q: give --password-file FILE, set %s, "+
			"or run on a terminal to be prompted", user, passwordEnv)
	}
	return promptPassword(a, user)
}

// readPasswordFile returns the first line of path, or of stdin for "-".
func readPasswordFile(a *app, path string) (string, error) {
	var src io.Reader = a.streams.In
	name := "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			// The value is not repeated: an operator who typed the password
			// itself after --password-file would otherwise see it in the
			// error and in any log that keeps it.
			return "", usageErrorf("--password-file names no existing file; give the path of a " +
				"file whose first line is the admin password")
		}
		if err != nil {
			return "", usageErrorf("reading --password-file: %v", err)
		}
		defer f.Close()
		if info, err := f.Stat(); err == nil && info.Mode().Perm()&0o077 != 0 {
			a.printer.Warnf("password file %s can be read by other users (mode %04o); run chmod 600 on it",
				path, info.Mode().Perm())
		}
		src, name = f, path
	}

	line, err := bufio.NewReaderSize(src, maxPasswordLine).ReadSlice('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", usageErrorf("the first line of --password-file %s is longer than %d bytes", name, maxPasswordLine)
		}
		return "", usageErrorf("reading --password-file %s: %v", name, err)
	}
	password := strings.TrimRight(string(line), "\r\n")
	if password == "" {
		return "", usageErrorf("--password-file %s is empty; its first line must be the admin password", name)
	}
	a.logger.Debug("admin password read from a file", "file", name)
	return password, nil
}

// promptPassword reads the password from the terminal without echo.
func promptPassword(a *app, user string) (string, error) {
	f, ok := a.streams.In.(interface{ Fd() uintptr })
	if !ok {
		return "", errors.New("prompting for the password: stdin is not a file descriptor")
	}
	fmt.Fprintf(a.streams.ErrOut, "Password of the management user %s: ", user)
	data, err := readPasswordNoEcho(int(f.Fd()))
	fmt.Fprintln(a.streams.ErrOut)
	if err != nil {
		return "", fmt.Errorf("reading the password from the terminal: %w", err)
	}
	if len(data) == 0 {
		return "", usageErrorf("empty password; enter the admin password of the management component")
	}
	return string(data), nil
}
