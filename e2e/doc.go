// Package e2e runs pasupgrade-cli against the lab's simulated PAS nodes as
// an operator would. The CLI runs inside the management node container and
// installs real packages with dpkg there. It starts the upgrade tool's
// container on the lab's Docker engine and calls the management simulator
// over loopback.
//
// The tests need the lab's Docker engine (see internal/testenv). Without
// one they skip with the reason, unless PASUPGRADE_REQUIRE_LAB=1 is set.
// Each test brings up its own lab, so independent tests run in parallel;
// PASUPGRADE_E2E_KEEP=1 leaves the labs running after the tests.
//
// The package also holds what the downtime benchmark shares with the
// tests: the Prober that measures core's availability from outside.
package e2e
