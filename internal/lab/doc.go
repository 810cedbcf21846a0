// Package lab runs a simulated PAS node for the demo and the end-to-end
// tests: a Debian bookworm image built with debootstrap, node containers of
// it on the host network with the Docker socket mounted, and a
// runner.Runner that runs commands inside a node.
//
// Everything the lab does to packages, users and services happens inside
// its containers. The machine that runs the lab only builds the root file
// system with debootstrap and talks to the Docker engine that DOCKER_HOST
// names.
package lab
