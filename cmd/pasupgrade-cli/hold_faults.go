//go:build pasupgrade_faults

package main

import "os"

// The end-to-end tests build the CLI with the pasupgrade_faults tag and
// name the step to hold after in this variable.
func init() { holdAfterStep = os.Getenv("PASUPGRADE_FAULT_HOLD_AFTER") }
