// Command faketool is a stand-in for the vendor's upgrade tool in the
// configconv tests. It is built statically and imported as a small image.
// Besides the three subcommands it has modes that exercise the runner:
// exit codes, output streams, prompts and terminal sizes.
//
// Words in a file "faketool.conf" in the working directory change the
// subcommands: "skip-write" makes them exit 0 without writing their output
// file, and "apply-fails" makes post-upgrade exit 4.
package main

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		fail(2, "usage: faketool MODE [ARGS]")
	}
	stdin := bufio.NewReader(os.Stdin)

	switch args[0] {
	case "exit":
		code, _ := strconv.Atoi(args[1])
		os.Exit(code)
	case "streams":
		fmt.Fprintln(os.Stdout, "a")
		fmt.Fprintln(os.Stderr, "err")
		fmt.Fprintln(os.Stdout, "b")
	case "prompt":
		fmt.Print("Proceed? [y/N] ")
		answer, err := stdin.ReadString('\n')
		if err != nil {
			fail(3, "no answer")
		}
		answer = strings.TrimSpace(answer)
		fmt.Printf("answer=%s\n", answer)
		if answer != "y" {
			os.Exit(3)
		}
	case "echo":
		// Print the first line of stdin, as a careless tool might print
		// the password it read.
		line, _ := stdin.ReadString('\n')
		fmt.Print("read: " + line)
		fmt.Fprint(os.Stderr, "no newline: "+strings.TrimSpace(line))
	case "sleep":
		fmt.Println("sleeping")
		time.Sleep(10 * time.Minute)
	case "size":
		// Print the terminal size after every line until "q".
		for {
			printSize()
			line, err := stdin.ReadString('\n')
			if err != nil || strings.TrimSpace(line) == "q" {
				return
			}
		}
	default:
		tool(args, stdin)
	}
}

func printSize() {
	ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
	if err != nil {
		fail(1, "no terminal: "+err.Error())
	}
	fmt.Printf("size=%dx%d\n", ws.Row, ws.Col)
}

// tool behaves as the upgrade tool's command line: global options, then
// a subcommand.
func tool(args []string, stdin *bufio.Reader) {
	var cacert string
	for len(args) > 1 && strings.HasPrefix(args[0], "--") {
		if args[0] == "--cacert" {
			cacert = args[1]
		}
		args = args[2:]
	}
	settings, _ := os.ReadFile("faketool.conf")
	if cacert != "" {
		if _, err := os.Stat(cacert); err != nil {
			fail(1, "cacert: "+err.Error())
		}
	}

	switch args[0] {
	case "pre-upgrade":
		sum := readPassword(stdin)
		if strings.Contains(string(settings), "skip-write") {
			return
		}
		text := fmt.Sprintf("pas_config_version: 4.8.0\npassword_sha256: %s\nlegacy_auth: basic\n", sum)
		write("pas-config-4.8.0.yaml", text)
	case "convert-config":
		data, err := os.ReadFile("pas-config-4.8.0.yaml")
		if err != nil {
			fail(1, err.Error())
		}
		var out []string
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if key, _, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(key, "legacy_") {
				fmt.Printf("Convert %s by dropping it? Proceed? [y/N] ", key)
				answer, err := stdin.ReadString('\n')
				if err != nil {
					fail(3, "no answer for "+key+": run on a terminal or give an answers file")
				}
				if strings.TrimSpace(answer) != "y" {
					fail(3, "conversion of "+key+" aborted")
				}
				continue
			}
			out = append(out, strings.Replace(line, "4.8.0", "4.9.0", 1))
		}
		if strings.Contains(string(settings), "skip-write") {
			return
		}
		write("pas-config-4.9.0.yaml", strings.Join(out, "\n")+"\n")
	case "post-upgrade":
		readPassword(stdin)
		if len(args) < 3 || args[1] != "--config-apply-timeout" {
			fail(2, "post-upgrade needs --config-apply-timeout")
		}
		if strings.Contains(string(settings), "apply-fails") {
			fail(4, "config apply failed on nodes: core-1")
		}
		fmt.Println("config applied within " + args[2] + "s")
	default:
		fail(2, "unknown mode "+args[0])
	}
}

func readPassword(stdin *bufio.Reader) string {
	line, err := stdin.ReadString('\n')
	if err != nil || strings.TrimSpace(line) == "" {
		fail(1, "no password on stdin")
	}
	return fmt.Sprintf("%x", sha256.Sum256([]byte(strings.TrimSuffix(line, "\n"))))
}

func write(name, text string) {
	if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
		fail(1, err.Error())
	}
}

func fail(code int, msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(code)
}
