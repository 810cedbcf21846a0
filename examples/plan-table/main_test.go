package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlanTable(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(&out))
	assert.Equal(t, 6, strings.Count(out.String(), "## "))
	assert.Contains(t, out.String(), "| stop-core | 3.2.10 | root | systemctl stop proxedo-api-security |")
	assert.Contains(t, out.String(), "| deploy-remote-ha | 4.2.19 | pas | pas-mgmt-deploy-core --deploy-ha --restart-ha |")
	assert.Contains(t, out.String(), "| remove-pas-user | 5.1.3 | root | userdel --force --remove pas |")
}
