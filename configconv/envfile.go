package configconv

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ImageTagKey is the variable of docker-compose.conf that selects the PAS
// image version.
const ImageTagKey = "DOCKER_IMAGE_TAG"

// ComposeConfPaths are the docker-compose.conf files whose ImageTagKey a
// multi node upgrade sets, relative to the file system root.
var ComposeConfPaths = []string{
	"/opt/balasys/etc/infrastructure/pas/docker-compose.conf",
	"/opt/balasys/etc/infrastructure/mgmt/docker-compose.conf",
	"/opt/balasys/etc/infrastructure/storage/docker-compose.conf",
}

// ErrInvalidValue is returned for a value an edit cannot write, such as an
// image tag that is not one.
var ErrInvalidValue = errors.New("invalid value")

// imageTagPattern is Docker's syntax for an image tag.
var imageTagPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// envKeyPattern is a shell variable name.
var envKeyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// envAssignment matches "[export ]KEY=" at the start of a line, with
// optional leading blanks. Group 1 is everything up to the key, group 2 the
// key.
var envAssignment = regexp.MustCompile(`^([ \t]*(?:export[ \t]+)?)([A-Za-z_][A-Za-z0-9_]*)=`)

// PlanImageTag plans setting ImageTagKey to tag in each file of paths, as
// SetEnvValue does. A missing file is an error, because a multi node
// upgrade must set the tag in all three.
func PlanImageTag(paths []string, tag string) ([]FileEdit, error) {
	if !imageTagPattern.MatchString(tag) {
		return nil, invalidTagError(tag)
	}
	edits := make([]FileEdit, 0, len(paths))
	for _, path := range paths {
		before, err := readEditable(path)
		if err != nil {
			return nil, err
		}
		after, err := SetEnvValue(before, ImageTagKey, tag)
		if err != nil {
			return nil, fmt.Errorf("editing %s: %w", path, err)
		}
		edits = append(edits, FileEdit{Path: path, Before: before, After: after})
	}
	return edits, nil
}

// SetEnvValue returns content, an env-style file of KEY=VALUE lines, with
// every assignment of key set to value. Only the value's bytes change: an
// "export " prefix, quotes around the value, a trailing comment, line
// endings and all other lines are kept. A "#" is a comment only after a
// blank, as in the shell, so "A=abc#1" has the value "abc#1". When no line
// assigns key, "key=value" is appended once, with "export " when the file's
// other assignments use it. Setting the value a second time changes
// nothing.
//
// The value must not need quoting: it may not contain blanks, quotes, "#",
// "$", "\" or line breaks.
func SetEnvValue(content []byte, key, value string) ([]byte, error) {
	if !envKeyPattern.MatchString(key) {
		return nil, fmt.Errorf("%w: variable name %q: use letters, digits and '_'", ErrInvalidValue, key)
	}
	if value == "" || strings.ContainsAny(value, " \t\r\n'\"#$\\`") {
		return nil, fmt.Errorf("%w %q for %s: it must be non-empty and need no quoting", ErrInvalidValue, value, key)
	}

	lines := bytes.SplitAfter(content, []byte("\n"))
	found, exported := false, false
	// openQuote is the quote of a value that continues on the next line,
	// whose lines are part of that value even when they look like
	// assignments.
	var openQuote byte
	var out bytes.Buffer
	for _, line := range lines {
		if openQuote != 0 {
			out.Write(line)
			openQuote = quoteOpenAtEnd(line, 0, openQuote)
			continue
		}
		m := envAssignment.FindSubmatchIndex(line)
		if m == nil {
			out.Write(line)
			continue
		}
		if bytes.Contains(line[m[2]:m[3]], []byte("export")) {
			exported = true
		}
		if string(line[m[4]:m[5]]) != key {
			out.Write(line)
			openQuote = quoteOpenAtEnd(line, m[1], 0)
			continue
		}
		found = true
		start, end, err := envValueSpan(line, m[1])
		if err != nil {
			return nil, fmt.Errorf("line %q: %w", strings.TrimRight(string(line), "\r\n"), err)
		}
		out.Write(line[:start])
		out.WriteString(value)
		out.Write(line[end:])
	}
	if found {
		return out.Bytes(), nil
	}

	if len(content) > 0 && !bytes.HasSuffix(content, []byte("\n")) {
		out.WriteString(lineEnding(content))
	}
	if exported {
		out.WriteString("export ")
	}
	out.WriteString(key + "=" + value + lineEnding(content))
	return out.Bytes(), nil
}

// envValueSpan returns the byte range of the value in line that starts at
// offset from, without its quotes.
func envValueSpan(line []byte, from int) (start, end int, err error) {
	rest := line[from:]
	if len(rest) > 0 && (rest[0] == '"' || rest[0] == '\'') {
		quote := rest[0]
		closing := bytes.IndexByte(rest[1:], quote)
		if closing < 0 {
			return 0, 0, fmt.Errorf("the value's closing %c quote is missing; fix the file by hand", quote)
		}
		return from + 1, from + 1 + closing, nil
	}

	end = from
	for end < len(line) {
		c := line[end]
		if c == '\n' || c == '\r' {
			break
		}
		if (c == ' ' || c == '\t') && bytes.HasPrefix(bytes.TrimLeft(line[end:], " \t"), []byte("#")) {
			break
		}
		end++
	}
	// Blanks before a comment or the line end are not part of the value.
	for end > from && (line[end-1] == ' ' || line[end-1] == '\t') {
		end--
	}
	return from, end, nil
}

// quoteOpenAtEnd scans line from offset from as the shell does, starting
// inside a value quoted with openQuote (0 for none), and returns the quote
// that is still open at the end of the line, or 0. A backslash escapes the
// next byte outside quotes and inside double quotes, and "#" after a blank
// starts a comment outside quotes.
func quoteOpenAtEnd(line []byte, from int, openQuote byte) byte {
	for i := from; i < len(line); i++ {
		c := line[i]
		switch {
		case openQuote == '\'':
			if c == '\'' {
				openQuote = 0
			}
		case c == '\\':
			i++
		case openQuote == '"':
			if c == '"' {
				openQuote = 0
			}
		case c == '"' || c == '\'':
			openQuote = c
		case c == '#' && i > from && (line[i-1] == ' ' || line[i-1] == '\t'):
			return 0
		}
	}
	return openQuote
}

func invalidTagError(tag string) error {
	return fmt.Errorf("%w: image tag %q: use letters, digits, '_', '.' and '-', such as 4.9.0", ErrInvalidValue, tag)
}

// lineEnding returns "\r\n" when content uses it, else "\n".
func lineEnding(content []byte) string {
	if bytes.Contains(content, []byte("\r\n")) {
		return "\r\n"
	}
	return "\n"
}
