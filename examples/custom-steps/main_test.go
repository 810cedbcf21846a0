package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCustomSteps(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(&out))
	text := out.String()
	drain := strings.Index(text, "drain ")
	stop := strings.Index(text, "stop-core ")
	start := strings.Index(text, "start-core ")
	undrain := strings.Index(text, "undrain ")
	assert.Positive(t, drain)
	assert.Less(t, drain, stop)
	assert.Less(t, start, undrain)
	assert.Contains(t, text, "load balancer: take the node out of the pool")
	assert.Contains(t, text, "core down for ")
}
