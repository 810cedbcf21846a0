// Package mgmtapi is a client of the PAS management component's REST API.
// It logs in, exports the running configuration, imports a configuration,
// runs a config apply and waits for it. It also reads the status of every
// node with its reload success, the pending changes and the version.
//
// The API is not publicly documented, so its paths are an Endpoints value
// with defaults that callers can override. The fake in mgmtapi/mgmtapitest
// serves exactly those defaults.
package mgmtapi
