// Package mgmtapitest provides a fake PAS management API for tests: a
// Handler with state (users, running and pending configuration, nodes,
// pending changes, apply jobs) and scriptable faults, served in-process by
// Start (HTTP) and StartTLS (HTTPS with a generated CA), and as a process
// by cmd/pas-mgmt-sim. It records every request, without headers or
// secrets, for assertions.
package mgmtapitest
