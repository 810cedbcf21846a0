package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOwnRunner(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(&out))
	assert.Contains(t, out.String(), "dry run: ")
	assert.Contains(t, out.String(), " 0 changes made")
	assert.Contains(t, out.String(), "commands as pas: 8, ")
	assert.Contains(t, out.String(), "transcript has the password: false")
}
