// Package deb reads Proxedo API Security .deb files and drives the package
// database: it checks that a directory holds the complete 4.9.0 set,
// reports what dpkg has installed, installs the set without ever waiting on
// an unanswered prompt, and removes or purges the packages.
//
// Reading a .deb (Inspect, FindSet) is pure Go and never unpacks anything to
// disk. Every command that touches the package database (dpkg, dpkg-query,
// apt-get, debconf-set-selections, debconf-get-selections) goes through a
// runner.Runner, so unit tests use runner/runnertest and the lab runs the same
// commands inside a container. Wrap the runner in runner.Transcript to keep a
// record of every command and its output with secrets redacted.
//
// Versions are ordered by Debian's rules (pault.ag/go/debian/version), so
// "4.9.0~rc1" sorts before "4.9.0" and "1:4.8.0" after "4.9.0".
package deb
