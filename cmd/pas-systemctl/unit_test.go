package main

import (
	"bufio"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		{"plain words", "/usr/bin/pas-core --flag  value", []string{"/usr/bin/pas-core", "--flag", "value"}, false},
		{"double quotes", `/bin/sh -c "echo a b"`, []string{"/bin/sh", "-c", "echo a b"}, false},
		{"single quotes keep backslash", `a 'b\c'`, []string{"a", `b\c`}, false},
		{"escaped space", `a b\ c`, []string{"a", "b c"}, false},
		{"empty quoted word", `a ""`, []string{"a", ""}, false},
		{"unterminated quote", `a "b`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitCommand(tt.in)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestExpandCommand(t *testing.T) {
	env := map[string]string{"OPTS": "-D -p 22", "DIR": "/opt/x"}
	got := expandCommand([]string{"/usr/sbin/sshd", "$OPTS", "--dir=${DIR}/y", "$MISSING", "$1x"}, env)
	assert.Equal(t, []string{"/usr/sbin/sshd", "-D", "-p", "22", "--dir=/opt/x/y", "x"}, got)
}

func TestParseUnit(t *testing.T) {
	text := `# comment
[Unit]
Description=Proxedo API Security management

[Service]
Type=simple
User=pas
WorkingDirectory=/opt/balasys
Environment=A=1 "B=two words"
Environment=C=3
EnvironmentFile=-/etc/default/pas
ExecStartPre=-/bin/true
ExecStartPre=/usr/bin/pas-mgmt-checkconfig
ExecStart=/opt/balasys/usr/bin/pas-mgmt \
    --verbose

[Install]
WantedBy=multi-user.target
`
	u, err := parseUnit(bufio.NewScanner(strings.NewReader(text)))
	require.NoError(t, err)
	assert.Equal(t, "Proxedo API Security management", u.description)
	assert.Equal(t, "pas", u.user)
	assert.Equal(t, "/opt/balasys", u.workDir)
	assert.Equal(t, []string{"A=1", "B=two words", "C=3"}, u.environment)
	assert.Equal(t, []string{"-/etc/default/pas"}, u.envFiles)
	assert.Equal(t, [][]string{{"/bin/true"}, {"/usr/bin/pas-mgmt-checkconfig"}}, u.execPre)
	assert.Equal(t, []bool{true, false}, u.preOptional)
	assert.Equal(t, []string{"/opt/balasys/usr/bin/pas-mgmt", "--verbose"}, u.execStart)
}

func TestParseUnitWithoutExecStart(t *testing.T) {
	_, err := parseUnit(bufio.NewScanner(strings.NewReader("[Service]\nUser=pas\n")))
	assert.ErrorContains(t, err, "ExecStart")
}

func TestUnitName(t *testing.T) {
	assert.Equal(t, "proxedo-api-security.service", unitName("proxedo-api-security"))
	assert.Equal(t, "ssh.service", unitName("ssh.service"))
}
