package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/pasops/pasupgrade/pasupgrade"
)

func TestHoldingStopsOnlyAfterTheNamedStep(t *testing.T) {
	stepEnd := func(id, outcome string) pasupgrade.Event {
		return pasupgrade.Event{Kind: pasupgrade.EventStepEnd, Step: &pasupgrade.StepInfo{ID: id}, Outcome: outcome}
	}
	events := []pasupgrade.Event{
		{Kind: pasupgrade.EventStepStart, Step: &pasupgrade.StepInfo{ID: "b"}},
		stepEnd("a", pasupgrade.OutcomeDone),
		stepEnd("b", pasupgrade.OutcomeFailed),
		stepEnd("b", pasupgrade.OutcomeDone),
		stepEnd("c", pasupgrade.OutcomeDone),
	}
	tests := []struct {
		hold string
		want string
	}{
		{"", ""},
		{"b", "pasupgrade-cli: holding after step b for the fault tests\n"},
		{"next", "pasupgrade-cli: holding after step a for the fault tests\n" +
			"pasupgrade-cli: holding after step b for the fault tests\n" +
			"pasupgrade-cli: holding after step c for the fault tests\n"},
	}
	for _, tc := range tests {
		t.Run("hold="+tc.hold, func(t *testing.T) {
			defer func(hold string, limit time.Duration) { holdAfterStep, holdLimit = hold, limit }(holdAfterStep, holdLimit)
			holdAfterStep, holdLimit = tc.hold, time.Millisecond

			var stderr bytes.Buffer
			var seen int
			sink := holding(func(pasupgrade.Event) { seen++ }, &stderr)
			for _, ev := range events {
				sink(ev)
			}
			assert.Equal(t, len(events), seen, "every event reaches the sink")
			assert.Equal(t, tc.want, stderr.String())
		})
	}
}
