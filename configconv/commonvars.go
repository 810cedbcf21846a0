package configconv

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// CommonVarsPath is the automation settings file of a multi node setup,
// relative to the file system root.
const CommonVarsPath = "/opt/balasys/etc/automation/common_vars.yml"

// CommonVars are the settings of common_vars.yml that a multi node upgrade
// changes.
type CommonVars struct {
	// StorageDebPath is the storage package file, storage_deb_path.
	StorageDebPath string
	// CoreDebPath is the core package file, core_deb_path.
	CoreDebPath string
	// ImageTag is common.docker.PAS_IMAGE_TAG.
	ImageTag string
}

// CommonVarsFor returns the settings for version with the package files in
// debDir, named as the vendor ships them (NAME_VERSION_all.deb).
func CommonVarsFor(version, debDir string) CommonVars {
	return CommonVars{
		StorageDebPath: filepath.Join(debDir, "proxedo-api-security-storage_"+version+"_all.deb"),
		CoreDebPath:    filepath.Join(debDir, "proxedo-api-security_"+version+"_all.deb"),
		ImageTag:       version,
	}
}

// ErrKeyNotFound is returned when a YAML file lacks a key an edit sets.
var ErrKeyNotFound = errors.New("configconv: key not found")

// PlanCommonVars plans setting vars in the common_vars.yml file at path, as
// SetYAMLValues does.
func PlanCommonVars(path string, vars CommonVars) (FileEdit, error) {
	if !imageTagPattern.MatchString(vars.ImageTag) {
		return FileEdit{}, invalidTagError(vars.ImageTag)
	}
	before, err := readEditable(path)
	if err != nil {
		return FileEdit{}, err
	}
	after, err := SetYAMLValues(before, map[string]string{
		"storage_deb_path":            vars.StorageDebPath,
		"core_deb_path":               vars.CoreDebPath,
		"common.docker.PAS_IMAGE_TAG": vars.ImageTag,
	})
	if err != nil {
		return FileEdit{}, fmt.Errorf("editing %s: %w", path, err)
	}
	return FileEdit{Path: path, Before: before, After: after}, nil
}

// SetYAMLValues returns content, a YAML document, with the scalar at each
// dotted key path of values (such as "common.docker.PAS_IMAGE_TAG") set to
// its string. Only the bytes of those scalars change: indentation,
// comments, key order and the quoting style of each value are kept. A value
// that would read as another type or be misparsed in the plain style is
// written double-quoted. Every key must exist and name a single-line
// scalar; a missing one gives ErrKeyNotFound, and nothing is set.
func SetYAMLValues(content []byte, values map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(content, &doc); err != nil {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("parsing YAML: %w: the file contains no mapping", ErrKeyNotFound)
	}

	lineStarts := lineOffsets(content)
	var spans []replacement
	for keyPath, value := range values {
		node, err := lookupScalar(doc.Content[0], keyPath)
		if err != nil {
			return nil, err
		}
		if node.Value == value {
			continue
		}
		span, err := scalarSpan(content, lineStarts, node)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", keyPath, err)
		}
		span.text = formatScalar(value, node.Style)
		if span.start == span.end && span.start > 0 && content[span.start-1] == ':' {
			// An empty value ("key:" with nothing after it) can start
			// right after the colon, and then needs a blank first.
			span.text = " " + span.text
		}
		spans = append(spans, span)
	}

	out := applyReplacements(content, spans)
	if err := checkYAMLEdit(content, out, values); err != nil {
		return nil, err
	}
	return out, nil
}

// lookupScalar follows the dotted keyPath through mappings.
func lookupScalar(node *yaml.Node, keyPath string) (*yaml.Node, error) {
	for _, key := range strings.Split(keyPath, ".") {
		if node.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("key %s: %w: the value containing %q is not a mapping; fix the file by hand",
				keyPath, ErrKeyNotFound, key)
		}
		var next *yaml.Node
		for i := 0; i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == key {
				next = node.Content[i+1]
			}
		}
		if next == nil {
			return nil, fmt.Errorf("key %s: %w; add it by hand", keyPath, ErrKeyNotFound)
		}
		node = next
	}
	if node.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("key %s: the value is not a scalar; fix the file by hand", keyPath)
	}
	return node, nil
}

// replacement is a byte range of the original content and its new text.
type replacement struct {
	start, end int
	text       string
}

func lineOffsets(content []byte) []int {
	offsets := []int{0}
	for i, c := range content {
		if c == '\n' {
			offsets = append(offsets, i+1)
		}
	}
	return offsets
}

// scalarSpan finds the bytes of node's scalar in content. The parser gives
// only the start (1-based line and column, counted in characters), so the
// end is found by scanning the token in its style.
func scalarSpan(content []byte, lineStarts []int, node *yaml.Node) (replacement, error) {
	if node.Line < 1 || node.Line > len(lineStarts) {
		return replacement{}, fmt.Errorf("the parser gave line %d, outside the file", node.Line)
	}
	lineEnd := len(content)
	if node.Line < len(lineStarts) {
		lineEnd = lineStarts[node.Line] - 1
	}
	base := lineStarts[node.Line-1]
	if node.Line == 1 && bytes.HasPrefix(content, byteOrderMark) {
		// The parser skips a byte order mark without counting a column.
		base += len(byteOrderMark)
	}
	line := string(content[base:lineEnd])
	start := runeOffset(line, node.Column-1)
	if start < 0 {
		return replacement{}, fmt.Errorf("the parser gave column %d, outside line %d", node.Column, node.Line)
	}
	if node.Anchor != "" || node.Tag != "" && node.Style&yaml.TaggedStyle != 0 {
		return replacement{}, fmt.Errorf("the value has an anchor or tag; set it by hand")
	}

	var end int
	switch {
	case node.Style&yaml.DoubleQuotedStyle != 0:
		end = quotedEnd(line, start, '"')
	case node.Style&yaml.SingleQuotedStyle != 0:
		end = quotedEnd(line, start, '\'')
	case node.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return replacement{}, fmt.Errorf("the value is a block scalar; set it by hand")
	default:
		end = plainEnd(line, start, node.Value)
	}
	if end < 0 {
		return replacement{}, fmt.Errorf("the value spans lines; set it by hand")
	}

	return replacement{start: base + start, end: base + end}, nil
}

// byteOrderMark is the UTF-8 encoding of U+FEFF, which some editors write
// at the start of a file.
var byteOrderMark = []byte("\ufeff")

// runeOffset converts a character column to a byte offset in line.
func runeOffset(line string, column int) int {
	n := 0
	for i := range line {
		if n == column {
			return i
		}
		n++
	}
	if n == column {
		return len(line)
	}
	return -1
}

// quotedEnd returns the offset after the closing quote of the quoted
// scalar starting at line[start], or -1 when it does not close on this
// line.
func quotedEnd(line string, start int, quote byte) int {
	for i := start + 1; i < len(line); i++ {
		switch {
		case quote == '"' && line[i] == '\\':
			i++
		case line[i] == quote && quote == '\'' && i+1 < len(line) && line[i+1] == '\'':
			i++
		case line[i] == quote:
			return i + 1
		}
	}
	return -1
}

// plainEnd returns the offset after the plain scalar value starting at
// line[start], or -1 when the source differs from the value. A single-line
// plain scalar has no escapes, so its source is the value itself, in block
// and in flow context alike. A scalar continued on the next line has a
// folded value that the line does not contain.
func plainEnd(line string, start int, value string) int {
	if !strings.HasPrefix(line[start:], value) {
		return -1
	}
	return start + len(value)
}

// formatScalar writes value in style when that reads back as the same
// string, and double-quoted otherwise.
func formatScalar(value string, style yaml.Style) string {
	switch {
	case style&yaml.SingleQuotedStyle != 0 && !strings.ContainsAny(value, "\n\r"):
		return "'" + strings.ReplaceAll(value, "'", "''") + "'"
	case style&yaml.DoubleQuotedStyle != 0:
		return doubleQuoted(value)
	case readsAsPlainString(value):
		return value
	default:
		return doubleQuoted(value)
	}
}

// yaml11Booleans are the plain scalars that YAML 1.1 readers, such as
// PyYAML under Ansible, read as booleans although YAML 1.2 reads strings.
var yaml11Booleans = map[string]bool{
	"y": true, "n": true, "yes": true, "no": true, "on": true, "off": true,
	"true": true, "false": true,
}

// readsAsPlainString reports whether value, written unquoted after "key: ",
// parses back as the same string under YAML 1.1 and 1.2.
func readsAsPlainString(value string) bool {
	if value == "" || strings.ContainsAny(value, "\n\r\t") || strings.TrimSpace(value) != value {
		return false
	}
	if yaml11Booleans[strings.ToLower(value)] {
		return false
	}
	var parsed map[string]any
	if err := yaml.Unmarshal([]byte("k: "+value+"\n"), &parsed); err != nil {
		return false
	}
	s, ok := parsed["k"].(string)
	return ok && s == value
}

func doubleQuoted(value string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range value {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// applyReplacements returns content with the ranges of spans replaced.
// The ranges do not overlap because each is a different scalar.
func applyReplacements(content []byte, spans []replacement) []byte {
	var out bytes.Buffer
	pos := 0
	for len(spans) > 0 {
		first := 0
		for i, s := range spans {
			if s.start < spans[first].start {
				first = i
			}
		}
		s := spans[first]
		out.Write(content[pos:s.start])
		out.WriteString(s.text)
		pos = s.end
		spans = append(spans[:first], spans[first+1:]...)
	}
	out.Write(content[pos:])
	return out.Bytes()
}

// checkYAMLEdit parses the edited text and compares it with the original:
// the keys of values must hold the new strings and everything else must be
// unchanged. It guards the byte splicing against a token it misread.
func checkYAMLEdit(before, after []byte, values map[string]string) error {
	var want, got any
	if err := yaml.Unmarshal(before, &want); err != nil {
		return fmt.Errorf("parsing YAML: %w", err)
	}
	if err := yaml.Unmarshal(after, &got); err != nil {
		return fmt.Errorf("the edited YAML does not parse (%v); set the values by hand", err)
	}
	for keyPath, value := range values {
		if err := setPath(want, strings.Split(keyPath, "."), value); err != nil {
			return err
		}
	}
	if !reflect.DeepEqual(want, got) {
		return fmt.Errorf("the edited YAML differs in more than the values set; set them by hand")
	}
	return nil
}

// setPath sets the value at keys in tree, a document decoded into any. The
// decoder makes a mapping with a key that is not a string, such as 80, a
// map[any]any instead of a map[string]any.
func setPath(tree any, keys []string, value string) error {
	switch m := tree.(type) {
	case map[string]any:
		if len(keys) == 1 {
			m[keys[0]] = value
			return nil
		}
		return setPath(m[keys[0]], keys[1:], value)
	case map[any]any:
		if len(keys) == 1 {
			m[keys[0]] = value
			return nil
		}
		return setPath(m[keys[0]], keys[1:], value)
	default:
		return fmt.Errorf("key %s: %w", strings.Join(keys, "."), ErrKeyNotFound)
	}
}
