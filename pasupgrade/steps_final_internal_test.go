package pasupgrade

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestComponentProblems(t *testing.T) {
	status := Status{Nodes: []NodeStatus{{Name: "mgmt", Components: []ComponentStatus{
		{Name: "mgmt", Version: "4.9.0", State: "running"},
		{Name: "ha", Version: "4.9.0", State: "stopped"},
		{Name: "core", Version: "4.8.0", State: "running"},
	}}}}
	tests := []struct {
		name string
		ha   bool
		want []string
	}{
		{"ha unused", false, []string{"core on node mgmt is at 4.8.0"}},
		{"ha used", true, []string{"ha on node mgmt is stopped", "core on node mgmt is at 4.8.0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, componentProblems(status, "4.9.0", tc.ha))
		})
	}
	assert.Equal(t, []string{"the status lists no nodes"}, componentProblems(Status{}, "4.9.0", false))
}

func TestHashScheme(t *testing.T) {
	assert.Equal(t, HashBcrypt, hashScheme("$2y$10$abc"))
	assert.Equal(t, HashSHA1, hashScheme("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="))
	assert.Equal(t, HashUnknown, hashScheme("$apr1$x"))
}

func TestInventoryHosts(t *testing.T) {
	hosts, err := InventoryHosts([]byte("all:\n  children:\n    core:\n      hosts:\n        core-1:\n          ansible_host: 10.0.0.5\n        core-2: {}\n        core-3: {ansible_host: 127.0.0.1, ansible_port: 2222}\n        core-4: {ansible_host: 10.0.0.7, ansible_user: ops}\n    other:\n      hosts:\n        core-2:\n"))
	assert.NoError(t, err)
	assert.Equal(t, []string{"10.0.0.5", "127.0.0.1:2222", "core-2", "ops@10.0.0.7"}, hosts)

	_, err = InventoryHosts([]byte("all: {}\n"))
	assert.ErrorContains(t, err, "lists no hosts")
}

func TestLineDiff(t *testing.T) {
	assert.Equal(t, "  -b=1\n  +b=2", LineDiff("a\nb=1\nc\n", "a\nb=2\nc\n"))
	assert.Equal(t, "  +new", LineDiff("", "new\n"))
	assert.Equal(t, "", LineDiff("same\n", "same\n"))
}
