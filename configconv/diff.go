package configconv

import (
	"bytes"
	"fmt"
	"strings"
)

// diffContext is the number of unchanged lines shown around each change,
// as in "diff -u".
const diffContext = 3

// maxLCSCells bounds the table of the line matcher. A changed region larger
// than this is shown as one block of removed lines followed by added lines,
// which is still a correct diff, only a less compact one.
const maxLCSCells = 4 << 20

// lineOp is one line of an edit script: ' ' kept, '-' removed, '+' added.
type lineOp struct {
	kind byte
	text string
}

// UnifiedDiff returns the differences between before and after in unified
// format, labelled with path as "a/path" and "b/path". It returns "" when
// the contents are equal.
func UnifiedDiff(path string, before, after []byte) string {
	if bytes.Equal(before, after) {
		return ""
	}
	ops := diffLines(splitLines(before), splitLines(after))

	var b strings.Builder
	fmt.Fprintf(&b, "--- a/%s\n+++ b/%s\n", strings.TrimPrefix(path, "/"), strings.TrimPrefix(path, "/"))
	for _, h := range hunks(ops) {
		writeHunk(&b, ops, h)
	}
	return b.String()
}

// splitLines splits text after each newline. A last line without a newline
// is kept as it is, so the diff can mark it.
func splitLines(text []byte) []string {
	var lines []string
	for len(text) > 0 {
		i := bytes.IndexByte(text, '\n')
		if i < 0 {
			lines = append(lines, string(text))
			break
		}
		lines = append(lines, string(text[:i+1]))
		text = text[i+1:]
	}
	return lines
}

// diffLines returns an edit script turning a into b. Common leading and
// trailing lines are matched first, so the table only covers the changed
// middle, which is small for the edits this package makes.
func diffLines(a, b []string) []lineOp {
	prefix := 0
	for prefix < len(a) && prefix < len(b) && a[prefix] == b[prefix] {
		prefix++
	}
	suffix := 0
	for suffix < len(a)-prefix && suffix < len(b)-prefix &&
		a[len(a)-1-suffix] == b[len(b)-1-suffix] {
		suffix++
	}

	var ops []lineOp
	for _, line := range a[:prefix] {
		ops = append(ops, lineOp{' ', line})
	}
	ops = append(ops, diffMiddle(a[prefix:len(a)-suffix], b[prefix:len(b)-suffix])...)
	for _, line := range a[len(a)-suffix:] {
		ops = append(ops, lineOp{' ', line})
	}
	return ops
}

// diffMiddle matches a and b by their longest common subsequence.
func diffMiddle(a, b []string) []lineOp {
	var ops []lineOp
	if (len(a)+1)*(len(b)+1) > maxLCSCells {
		for _, line := range a {
			ops = append(ops, lineOp{'-', line})
		}
		for _, line := range b {
			ops = append(ops, lineOp{'+', line})
		}
		return ops
	}

	// common[i][j] is the length of the longest common subsequence of
	// a[i:] and b[j:].
	common := make([][]int, len(a)+1)
	for i := range common {
		common[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				common[i][j] = common[i+1][j+1] + 1
			} else {
				common[i][j] = max(common[i+1][j], common[i][j+1])
			}
		}
	}

	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] == b[j]:
			ops = append(ops, lineOp{' ', a[i]})
			i++
			j++
		case common[i+1][j] >= common[i][j+1]:
			ops = append(ops, lineOp{'-', a[i]})
			i++
		default:
			ops = append(ops, lineOp{'+', b[j]})
			j++
		}
	}
	for ; i < len(a); i++ {
		ops = append(ops, lineOp{'-', a[i]})
	}
	for ; j < len(b); j++ {
		ops = append(ops, lineOp{'+', b[j]})
	}
	return ops
}

// hunk is a range [start, end) of the edit script printed as one hunk.
type hunk struct{ start, end int }

// hunks groups the changed lines of ops with diffContext lines around
// them, merging groups whose context would overlap.
func hunks(ops []lineOp) []hunk {
	var out []hunk
	for i, op := range ops {
		if op.kind == ' ' {
			continue
		}
		start := max(0, i-diffContext)
		end := min(len(ops), i+1+diffContext)
		if n := len(out); n > 0 && start <= out[n-1].end {
			out[n-1].end = end
			continue
		}
		out = append(out, hunk{start, end})
	}
	return out
}

func writeHunk(b *strings.Builder, ops []lineOp, h hunk) {
	// Line numbers are 1-based positions in the old and new file of the
	// hunk's first line.
	oldLine, newLine := 1, 1
	for _, op := range ops[:h.start] {
		if op.kind != '+' {
			oldLine++
		}
		if op.kind != '-' {
			newLine++
		}
	}
	oldCount, newCount := 0, 0
	for _, op := range ops[h.start:h.end] {
		if op.kind != '+' {
			oldCount++
		}
		if op.kind != '-' {
			newCount++
		}
	}
	fmt.Fprintf(b, "@@ -%s +%s @@\n", hunkRange(oldLine, oldCount), hunkRange(newLine, newCount))

	for _, op := range ops[h.start:h.end] {
		b.WriteByte(op.kind)
		b.WriteString(op.text)
		if !strings.HasSuffix(op.text, "\n") {
			b.WriteString("\n\\ No newline at end of file\n")
		}
	}
}

// hunkRange formats a hunk's line range as "diff -u" does: an empty range
// names the line before it.
func hunkRange(line, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", line-1)
	case 1:
		return fmt.Sprintf("%d", line)
	default:
		return fmt.Sprintf("%d,%d", line, count)
	}
}
