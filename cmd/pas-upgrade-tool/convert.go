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
// blocks are kept byte for byte.
func convert(text, source string, confirm func(item string) error) (string, error) {
	lines := strings.SplitAfter(text, "\n")
	out := make([]string, 0, len(lines))
	versionSeen := false
	for i := 0; i < len(lines); i++ {
		line := lines[i]
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
			i = endOfBlock(lines, i, indent)
			continue
		}
		out = append(out, line)
	}
	if !versionSeen {
		return "", fmt.Errorf("%s has no %s line; export it again with pre-upgrade", source, versionKey)
	}
	return strings.Join(out, ""), nil
}

// yamlKey returns the mapping key on line and its indentation, skipping
// blank lines, comments and list items.
func yamlKey(line string) (key string, indent int, ok bool) {
	trimmed := strings.TrimLeft(line, " ")
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
