package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// confirm asks question on the terminal and returns nil only for a "y" or
// "yes" reply, or at once when yes (the --yes flag) is set. Without a
// terminal it fails with a usage error that names change, the effect that
// needs confirming. A reply other than yes returns an error starting with
// cancelled.
func confirm(a *app, yes bool, question, change, cancelled string) error {
	if yes {
		return nil
	}
	if !a.streams.InIsTerminal {
		return usageErrorf("%s: pass --yes to confirm when stdin is not a terminal", change)
	}

	fmt.Fprintf(a.streams.ErrOut, "%s [y/N] ", question)
	reply, err := bufio.NewReader(a.streams.In).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the confirmation: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(reply)) {
	case "y", "yes":
		return nil
	}
	return errors.New(cancelled + ": the reply was not yes")
}
