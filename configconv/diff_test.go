package configconv

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUnifiedDiff(t *testing.T) {
	tests := []struct {
		name, before, after, want string
	}{
		{"equal", "a\n", "a\n", ""},
		{
			"one line changed",
			"1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\n3\n4\nX\n6\n7\n8\n9\n",
			"@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+X\n 6\n 7\n 8\n",
		},
		{
			"line appended",
			"a\nb\n", "a\nb\nc\n",
			"@@ -1,2 +1,3 @@\n a\n b\n+c\n",
		},
		{
			"missing final newline added",
			"a\nb", "a\nb\nc\n",
			"@@ -1,2 +1,3 @@\n a\n-b\n\\ No newline at end of file\n+b\n+c\n",
		},
		{
			"into empty file",
			"", "a\n",
			"@@ -0,0 +1 @@\n+a\n",
		},
		{
			"two hunks",
			"1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "X\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\nY\n",
			"@@ -1,4 +1,4 @@\n-1\n+X\n 2\n 3\n 4\n@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+Y\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := UnifiedDiff("/etc/f", []byte(tt.before), []byte(tt.after))
			if tt.want == "" {
				assert.Empty(t, got)
				return
			}
			assert.Equal(t, "--- a/etc/f\n+++ b/etc/f\n"+tt.want, got)
		})
	}
}

func TestUnifiedDiffLargeMiddle(t *testing.T) {
	var before, after strings.Builder
	for i := 0; i < 3000; i++ {
		before.WriteString("old\n")
		after.WriteString("new\n")
	}
	got := UnifiedDiff("f", []byte(before.String()), []byte(after.String()))
	assert.Equal(t, 3000, strings.Count(got, "\n-old"))
	assert.Equal(t, 3000, strings.Count(got, "\n+new"))
}
