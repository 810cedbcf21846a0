package main

import (
	"fmt"
	"io"
	"time"

	"github.com/pasops/pasupgrade/pasupgrade"
)

// holdAfterStep is the id of the step after which a run stops and waits,
// so that a test can kill it at that exact step boundary. Only the build
// with the pasupgrade_faults tag, which the end-to-end tests make, sets it
// (see hold_faults.go). "next" means the first step the run completes. Empty, as
// in every other build, never holds.
var holdAfterStep string

// holdLimit is how long a held run waits before it goes on by itself, in
// case the test that asked for the hold fails to kill it.
var holdLimit = 2 * time.Minute

// holding returns sink, followed by the hold of holdAfterStep when it is
// set. The hold comes after sink, so the step's end has been printed and
// the journal, written before the event, records the step as done.
func holding(sink pasupgrade.EventSink, stderr io.Writer) pasupgrade.EventSink {
	if holdAfterStep == "" {
		return sink
	}
	return func(ev pasupgrade.Event) {
		sink(ev)
		if ev.Kind != pasupgrade.EventStepEnd || ev.Outcome != pasupgrade.OutcomeDone || ev.Step == nil {
			return
		}
		if holdAfterStep != "next" && holdAfterStep != ev.Step.ID {
			return
		}
		fmt.Fprintf(stderr, "pasupgrade-cli: holding after step %s for the fault tests\n", ev.Step.ID)
		time.Sleep(holdLimit)
	}
}
