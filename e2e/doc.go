// Package e2e runs pasupgrade-cli against the lab's simulated PAS nodes as
// an operator would: the CLI runs inside the management node container,
// installs real packages with dpkg there, starts the upgrade tool's
// container on the lab's Docker engine and talks to the management
// simulator over loopback.
//
// The tests need the lab's Docker engine (see internal/testenv). Without
// one they skip with the reason, unless PASUPGRADE_REQUIRE_LAB=1 is set.
//
// The package also holds what the downtime benchmark shares with the
// tests: the Prober that measures core's availability from outside.
package e2e
