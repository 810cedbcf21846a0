package main

import (
	"fmt"
	"strings"
)

// versionKey is the first key of every exported configuration.
const versionKey = "pas_config_version"

// legacyPrefix marks keys that 4.9.0 no longer has. The converter cannot
// translate them, so it asks before dropping each one with its block.
const legacyPrefix = "legacy_"

// convert turns a 4.8.0 configuration (YAML text from source) into 4.9.0.
// It calls confirm for every legacy key and stops at the first error
// confirm returns. Lines other than the version line and the dropped
// blocks are kept byte for byte, except that a sequence item whose first
// key is dropped passes its "- " on to its next key, or becomes {}.
func convert(text, source string, confirm func(item string) error) (string, error) {
	lines := strings.SplitAfter(text, "\n")
	out := make([]string, 0, len(lines))
	versionSeen := false
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if col, ok := blockScalarItem(line); ok {
			// The text lines of a "- |" item contain no keys.
			end := endOfScalar(lines, i, col)
			out = append(out, lines[i:end+1]...)
			i = end
			continue
		}
		key, indent, ok := yamlKey(line)
		if !ok {
			out = append(out, line)
			continue
		}
		if !versionSeen {
			if key != versionKey || indent != 0 {
				return "", fmt.Errorf("%s does not start with %s; export it again with pre-upgrade",
					source, versionKey)
			}
			version := strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
			if version != "4.8.0" {
				return "", fmt.Errorf("%s has %s %s; convert-config converts only 4.8.0",
					source, versionKey, version)
			}
			out = append(out, versionKey+": 4.9.0"+lineEnding(line))
			versionSeen = true
			continue
		}
		if strings.HasPrefix(key, legacyPrefix) {
			if err := confirm(key); err != nil {
				return "", err
			}
			end := endOfBlock(lines, i, indent)
			if strings.TrimSpace(line[:indent]) != "" {
				out = append(out, openedItem(lines, line, end, indent)...)
			}
			i = end
			continue
		}
		out = append(out, line)
		if hasBlockScalar(line) {
			end := endOfScalar(lines, i, indent)
			out = append(out, lines[i+1:end+1]...)
			i = end
		}
	}
	if !versionSeen {
		return "", fmt.Errorf("%s has no %s line; export it again with pre-upgrade", source, versionKey)
	}
	return strings.Join(out, ""), nil
}

// openedItem handles a dropped key that opened a sequence item ("- key:",
// with the dashes in line[:indent]). The item's next key, the first
// non-blank line after end at the same indentation, takes over the
// dashes in lines. Without one, openedItem returns the item as an empty
// mapping, so that the sequence keeps its length.
func openedItem(lines []string, line string, end, indent int) []string {
	for j := end + 1; j < len(lines); j++ {
		trimmed := strings.TrimLeft(lines[j], " ")
		if strings.TrimSpace(trimmed) == "" {
			continue
		}
		if len(lines[j])-len(trimmed) == indent && !strings.HasPrefix(trimmed, "-") {
			lines[j] = line[:indent] + trimmed
			return nil
		}
		break
	}
	return []string{line[:indent] + "{}" + lineEnding(line)}
}

// yamlKey returns the mapping key on line and the column it starts at,
// after any "- " of sequence items, skipping blank lines, comments and
// lines without a key.
func yamlKey(line string) (key string, indent int, ok bool) {
	trimmed := strings.TrimLeft(line, " ")
	for strings.HasPrefix(trimmed, "- ") {
		trimmed = strings.TrimLeft(trimmed[2:], " ")
	}
	indent = len(line) - len(trimmed)
	trimmed = strings.TrimRight(trimmed, "\r\n")
	if trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, "-") {
		return "", 0, false
	}
	key, _, found := strings.Cut(trimmed, ":")
	if !found || strings.ContainsAny(key, " \t") {
		return "", 0, false
	}
	return key, indent, true
}

// hasBlockScalar reports whether the value on a key line is a literal or
// folded block scalar ("key: |", "key: >-", "key: |2 # comment").
func hasBlockScalar(line string) bool {
	_, value, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
	return isBlockIndicator(value)
}

// blockScalarItem reports whether line is a sequence item whose value is
// a block scalar ("- |"), and returns the column of its last dash.
func blockScalarItem(line string) (int, bool) {
	trimmed := strings.TrimLeft(line, " ")
	if !strings.HasPrefix(trimmed, "- ") {
		return 0, false
	}
	col := len(line) - len(trimmed)
	rest := trimmed[2:]
	for strings.HasPrefix(strings.TrimLeft(rest, " "), "- ") {
		rest = strings.TrimLeft(rest, " ")
		col = len(line) - len(rest)
		rest = rest[2:]
	}
	return col, isBlockIndicator(strings.TrimRight(rest, "\r\n"))
}

// isBlockIndicator reports whether value, the text after a key's colon
// or an item's dash, is a block scalar header with an optional comment.
func isBlockIndicator(value string) bool {
	value, _, _ = strings.Cut(value, " #")
	value = strings.TrimSpace(value)
	if value == "" || (value[0] != '|' && value[0] != '>') {
		return false
	}
	return strings.Trim(value[1:], "+-0123456789") == ""
}

// endOfScalar returns the index of the last line of the block scalar that
// starts on lines[start]. Its text is the lines after it that are indented
// deeper than col, with the blank lines between them.
func endOfScalar(lines []string, start, col int) int {
	end := start
	for j := start + 1; j < len(lines); j++ {
		trimmed := strings.TrimLeft(lines[j], " ")
		if strings.TrimSpace(trimmed) == "" {
			continue
		}
		if len(lines[j])-len(trimmed) <= col {
			break
		}
		end = j
	}
	return end
}

// endOfBlock returns the index of the last line that belongs to the key on
// lines[start]: the lines after it that are indented deeper, or are items
// of a sequence at the key's indentation, with the blank lines between them.
func endOfBlock(lines []string, start, indent int) int {
	end := start
	for j := start + 1; j < len(lines); j++ {
		trimmed := strings.TrimLeft(lines[j], " ")
		if strings.TrimSpace(trimmed) == "" {
			continue
		}
		depth := len(lines[j]) - len(trimmed)
		// A block sequence may sit at the same indentation as its key.
		if depth < indent || (depth == indent && !strings.HasPrefix(trimmed, "-")) {
			break
		}
		end = j
	}
	return end
}

func lineEnding(line string) string {
	if strings.HasSuffix(line, "\r\n") {
		return "\r\n"
	}
	if strings.HasSuffix(line, "\n") {
		return "\n"
	}
	return ""
}
