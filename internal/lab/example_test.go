package lab_test

import (
	"context"
	"fmt"
	"log"

	"github.com/pasops/pasupgrade/internal/lab"
	"github.com/pasops/pasupgrade/runner"
)

// Up starts a single-node lab, and the management node's runner runs
// commands in it as root or as pas.
func ExampleUp() {
	ctx := context.Background()
	cli, err := lab.Connect(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()

	l, err := lab.Up(ctx, cli, lab.Options{Name: "example", Topology: lab.TopologySingle})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Down(ctx, cli)

	mgmt, err := l.Node(cli, "mgmt")
	if err != nil {
		log.Fatal(err)
	}
	res, err := mgmt.Run(ctx, runner.Command{
		Argv: []string{"systemctl", "is-active", "proxedo-api-security-mgmt"},
		User: "pas",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("mgmt is %s at %s", res.Stdout, l.MgmtURL())
}

// StartNode gives a bare Debian node, without PAS, for tests that run real
// commands such as dpkg in a container.
func ExampleStartNode() {
	ctx := context.Background()
	cli, err := lab.Connect(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()

	node, err := lab.StartNode(ctx, cli, lab.NodeOptions{Name: lab.UniqueName("example")})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Remove(ctx)

	res, err := node.Run(ctx, runner.Command{Argv: []string{"dpkg-query", "--show", "sudo"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(res.Stdout))
}
