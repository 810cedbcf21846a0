package pasupgrade

import (
	"fmt"
	"strings"
)

// maxDiffCells bounds the work LineDiff does: files whose line counts
// multiply to more are summarised instead of compared line by line.
const maxDiffCells = 4 << 20

// LineDiff returns the lines that differ between old and new, each prefixed
// with "-" (removed) or "+" (added), with unchanged lines left out. It is
// meant for the small configuration files the plans edit.
func LineDiff(old, new string) string {
	a, b := splitLines(old), splitLines(new)
	if len(a)*len(b) > maxDiffCells {
		return fmt.Sprintf("  (%d lines replaced by %d lines)", len(a), len(b))
	}
	// lcs[i][j] is the length of the longest common subsequence of a[i:]
	// and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			fmt.Fprintf(&out, "  -%s\n", a[i])
			i++
		default:
			fmt.Fprintf(&out, "  +%s\n", b[j])
			j++
		}
	}
	return strings.TrimSuffix(out.String(), "\n")
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
