// Package lab runs a simulated PAS installation for the demo and the
// end-to-end tests.
//
// EnsureNodeImage builds a Debian bookworm image with debootstrap and
// caches it by content key. StartNode runs a container of it on the host
// network with the engine's socket and a same-path work directory, and a
// *Node is a runner.Runner that runs commands inside it. Up builds on
// these: it installs the simulated PAS 4.8.0 packages in one or two nodes
// and starts their services, and Lab.Down removes it all again.
//
// Everything the lab does to packages, users and services happens inside
// its containers. The machine that runs the lab only builds the root file
// system with debootstrap, compiles the lab's commands and talks to the
// Docker engine that DOCKER_HOST names.
package lab
