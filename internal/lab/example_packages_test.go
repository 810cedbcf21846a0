package lab_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/pasops/pasupgrade/internal/lab"
)

// ExampleBuildPackages builds the six simulated packages into a directory,
// ready to be copied into a node container and installed there with dpkg.
func ExampleBuildPackages() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pas-debs-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	debs, err := lab.BuildPackages(ctx, dir, lab.BuildOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(debs[lab.DebFileName(lab.MgmtPackage, "4.9.0")])
}

// ExampleEnsureToolImage imports the upgrade tool's image under its default
// reference, which the guide's docker run commands then use.
func ExampleEnsureToolImage() {
	ctx := context.Background()
	cli, err := lab.Connect(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()

	if err := lab.EnsureToolImage(ctx, cli, lab.DefaultToolImage); err != nil {
		log.Fatal(err)
	}
	fmt.Println("docker run --rm -it --network=host --volume $(pwd):/upgrade", lab.DefaultToolImage, "pre-upgrade")
}
