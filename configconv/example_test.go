package configconv_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/pasops/pasupgrade/configconv"
)

func ExampleSetEnvValue() {
	conf := []byte("# compose settings\nexport DOCKER_IMAGE_TAG=\"4.8.0\"\nDB_PASS=abc#123\n")

	updated, err := configconv.SetEnvValue(conf, configconv.ImageTagKey, "4.9.0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(updated))
	// Output:
	// # compose settings
	// export DOCKER_IMAGE_TAG="4.9.0"
	// DB_PASS=abc#123
}

func ExampleSetYAMLValues() {
	vars := []byte("core_deb_path: /tmp/proxedo-api-security_4.8.0_all.deb   # keep in sync\n" +
		"common:\n  docker:\n    PAS_IMAGE_TAG: 4.8.0\n")

	updated, err := configconv.SetYAMLValues(vars, map[string]string{
		"core_deb_path":               "/tmp/proxedo-api-security_4.9.0_all.deb",
		"common.docker.PAS_IMAGE_TAG": "4.9.0",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(updated))
	// Output:
	// core_deb_path: /tmp/proxedo-api-security_4.9.0_all.deb   # keep in sync
	// common:
	//   docker:
	//     PAS_IMAGE_TAG: 4.9.0
}

// A dry run prints the diff of each planned edit; a real run applies it.
func ExamplePlanImageTag() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "docker-compose.conf")
	if err := os.WriteFile(path, []byte("DOCKER_IMAGE_TAG=4.8.0\n"), 0o640); err != nil {
		log.Fatal(err)
	}

	edits, err := configconv.PlanImageTag([]string{path}, "4.9.0")
	if err != nil {
		log.Fatal(err)
	}
	for _, edit := range edits {
		fmt.Println(edit.Changed())
		if err := edit.Apply(); err != nil {
			log.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	fmt.Print(string(data))
	// Output:
	// true
	// DOCKER_IMAGE_TAG=4.9.0
}

// Running the three subcommands from the tool's image, as the guide's
// docker run lines do, with the pas user's uid:gid.
func ExampleTool() {
	cli, err := configconv.NewDockerClient()
	if err != nil {
		log.Fatal(err)
	}
	pasUser, err := configconv.LookupUserID("pas")
	if err != nil {
		log.Fatal(err)
	}
	tool := &configconv.Tool{
		Runner:   &configconv.DockerRunner{Client: cli, User: pasUser},
		WorkDir:  "/var/backups/pasupgrade/work",
		Password: "the admin password, read without echo",
		Answers:  nil, // prompts fail with ErrNeedsAnswer unless Terminal is set
		Stdout:   os.Stdout,
		Stderr:   os.Stderr,
	}
	ctx := context.Background()

	// Pull the image before the core component stops.
	if err := tool.Runner.Prepare(ctx); err != nil {
		log.Fatal(err)
	}
	if _, err := tool.PreUpgrade(ctx); err != nil {
		log.Fatal(err)
	}
	converted, err := tool.ConvertConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("converted:", converted)

	outcome, err := tool.PostUpgrade(ctx, 20*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("applied:", outcome.Applied)
}
