package mgmtapi

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestFileNameOf(t *testing.T) {
	tests := []struct {
		header, want string
	}{
		{`attachment; filename="pas-config-4.8.0.yaml"`, "pas-config-4.8.0.yaml"},
		{`attachment; filename=plain.yaml`, "plain.yaml"},
		{`attachment; filename="../../etc/passwd"`, "passwd"},
		{`attachment; filename="..\\..\\windows.yaml"`, "windows.yaml"},
		{`attachment; filename=".hidden"`, "fallback.yaml"},
		{`attachment; filename=".."`, "fallback.yaml"},
		{`attachment; filename="/"`, "fallback.yaml"},
		{`attachment`, "fallback.yaml"},
		{``, "fallback.yaml"},
		{`attachment; filename="unterminated`, "fallback.yaml"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, fileNameOf(tt.header, "fallback.yaml"), "header %q", tt.header)
	}
}

func FuzzFileNameOf(f *testing.F) {
	f.Add(`attachment; filename="a/../b.yaml"`)
	f.Add(`attachment; filename*=UTF-8''%2e%2e%2fx`)
	f.Fuzz(func(t *testing.T, header string) {
		name := fileNameOf(header, "fallback.yaml")
		if name != filepath.Base(name) || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
			t.Fatalf("unsafe file name %q from header %q", name, header)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"", 0, false},
		{"5", 5 * time.Second, true},
		{" 0 ", 0, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
	}
	for _, tt := range tests {
		got, ok := retryAfter(tt.value, now)
		assert.Equal(t, tt.ok, ok, "value %q", tt.value)
		assert.Equal(t, tt.want, got, "value %q", tt.value)
	}
}

func TestBackoffBounds(t *testing.T) {
	p := RetryPolicy{MaxRetries: 10, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	for attempt := 0; attempt < 70; attempt++ {
		full := min(p.BaseDelay<<min(attempt, 20), p.MaxDelay)
		for range 20 {
			d := p.backoff(attempt)
			assert.GreaterOrEqual(t, d, full/2, "attempt %d", attempt)
			assert.LessOrEqual(t, d, full, "attempt %d", attempt)
		}
	}
}
