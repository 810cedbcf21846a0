package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// unit is the part of a .service file that the stand-in acts on.
type unit struct {
	name        string // with the .service suffix
	path        string // the file it was read from
	description string
	execStart   []string   // the main command line
	execPre     [][]string // ExecStartPre lines, in order
	preOptional []bool     // whether each ExecStartPre had the "-" prefix
	user        string
	group       string
	workDir     string
	environment []string // KEY=VALUE from Environment= lines
	envFiles    []string // EnvironmentFile= paths; a leading "-" means optional
	restart     string   // Restart=: no, on-failure, on-abnormal or always
	restartSec  time.Duration
}

// errNoUnit is returned for a unit without a unit file.
var errNoUnit = errors.New("unit not found")

// noUnitError is errNoUnit for one unit, worded as systemctl words it.
type noUnitError string

func (e noUnitError) Error() string        { return "Unit " + string(e) + " not found." }
func (e noUnitError) Is(target error) bool { return target == errNoUnit }

// unitName returns name with the .service suffix systemctl adds.
func unitName(name string) string {
	if strings.Contains(name, ".") {
		return name
	}
	return name + ".service"
}

// loadUnit reads the unit file of name from the first unit directory that
// has one, as systemd's search path does.
func loadUnit(env *environment, name string) (*unit, error) {
	name = unitName(name)
	for _, dir := range unitDirs {
		path := env.path(dir + "/" + name)
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		u, err := parseUnit(bufio.NewScanner(f))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		u.name, u.path = name, dir+"/"+name
		return u, nil
	}
	return nil, noUnitError(name)
}

// parseUnit reads the [Unit] and [Service] keys the stand-in uses. Lines
// ending in a backslash continue on the next line, as in systemd.
func parseUnit(sc *bufio.Scanner) (*unit, error) {
	u := &unit{restart: "no", restartSec: 100 * time.Millisecond}
	section := ""
	pending := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasSuffix(line, "\\") {
			pending += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, pending = pending+line, ""
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			section = strings.Trim(line, "[]")
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if err := u.set(section, strings.TrimSpace(key), strings.TrimSpace(value)); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(u.execStart) == 0 {
		return nil, errors.New("no ExecStart= line in [Service]")
	}
	return u, nil
}

func (u *unit) set(section, key, value string) error {
	switch section + "." + key {
	case "Unit.Description":
		u.description = value
	case "Service.ExecStart":
		words, err := splitCommand(strings.TrimLeft(value, "@+!:"))
		if err != nil {
			return fmt.Errorf("ExecStart=%s: %w", value, err)
		}
		u.execStart = words
	case "Service.ExecStartPre":
		optional := strings.HasPrefix(value, "-")
		words, err := splitCommand(strings.TrimLeft(value, "-@+!:"))
		if err != nil {
			return fmt.Errorf("ExecStartPre=%s: %w", value, err)
		}
		u.execPre = append(u.execPre, words)
		u.preOptional = append(u.preOptional, optional)
	case "Service.User":
		u.user = value
	case "Service.Group":
		u.group = value
	case "Service.WorkingDirectory":
		u.workDir = strings.TrimPrefix(value, "-")
	case "Service.Environment":
		words, err := splitCommand(value)
		if err != nil {
			return fmt.Errorf("Environment=%s: %w", value, err)
		}
		u.environment = append(u.environment, words...)
	case "Service.EnvironmentFile":
		u.envFiles = append(u.envFiles, value)
	case "Service.Restart":
		u.restart = value
	case "Service.RestartSec":
		d, err := parseSeconds(value)
		if err != nil {
			return fmt.Errorf("RestartSec=%s: %w", value, err)
		}
		u.restartSec = d
	}
	return nil
}

// splitCommand splits a systemd command line into words, honouring double
// and single quotes and backslash escapes.
func splitCommand(s string) ([]string, error) {
	var words []string
	var word strings.Builder
	inWord := false
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote, inWord = c, true
		case c == '\\' && i+1 < len(s) && quote != '\'':
			i++
			word.WriteByte(s[i])
			inWord = true
		case quote == 0 && (c == ' ' || c == '\t'):
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}

// expandCommand substitutes environment variables in a command line as
// systemd does: a word that is exactly $NAME splits the value into words,
// and ${NAME} inside a word inserts the value as it is.
func expandCommand(words []string, env map[string]string) []string {
	var out []string
	for _, w := range words {
		if name, ok := strings.CutPrefix(w, "$"); ok && isVarName(name) {
			out = append(out, strings.Fields(env[name])...)
			continue
		}
		out = append(out, os.Expand(w, func(name string) string { return env[name] }))
	}
	return out
}

func isVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// readEnvironmentFile reads KEY=VALUE lines, skipping comments and blank
// lines and removing quotes around a value.
func readEnvironmentFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var env []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		env = append(env, strings.TrimSpace(key)+"="+value)
	}
	return env, nil
}

// parseSeconds reads a systemd time span: a bare number is seconds, and a
// Go duration suffix such as "500ms" or "2s" is accepted too.
func parseSeconds(value string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(value, 64); err == nil {
		return time.Duration(n * float64(time.Second)), nil
	}
	return time.ParseDuration(value)
}
