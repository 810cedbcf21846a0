// Command pasupgrade-cli upgrades a Proxedo API Security installation from
// 4.8.0 to 4.9.0, and restores it to 4.8.0, following the vendor's guide.
//
// It only parses flags and configuration, builds the library's dependencies,
// renders events and maps errors to the exit codes listed in exitcode.go and
// the README. Everything else lives in the library packages.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// A second interrupt ends the process at once: the first one only
	// cancels ctx so that running steps can clean up.
	go func() {
		<-ctx.Done()
		stop()
	}()

	os.Exit(run(ctx, os.Args[1:], newStreams()))
}
