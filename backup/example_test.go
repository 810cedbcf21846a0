package backup_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/pasops/pasupgrade/backup"
	"github.com/pasops/pasupgrade/backup/backuptest"
)

// Example backs up a sample node tree, verifies the set and restores it
// into another root.
func Example() {
	work, err := os.MkdirTemp("", "backup-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	node := filepath.Join(work, "node")
	if err := os.Mkdir(node, 0o755); err != nil {
		log.Fatal(err)
	}
	if err := backuptest.WriteTree(node, backuptest.TreeOptions{}); err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	set, err := backup.Create(ctx, backup.Options{
		Root:     node,
		Dir:      filepath.Join(work, "backups"),
		Topology: backup.TopologyMulti,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := backup.Verify(ctx, set.Dir); err != nil {
		log.Fatal(err)
	}

	restored := filepath.Join(work, "restored")
	report, err := backup.Restore(ctx, set.ArchivePath(), backup.RestoreOptions{Root: restored})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("restored %d files and %d links\n", report.Files, report.Links)
	for _, link := range report.OutsideLinks {
		fmt.Printf("outside link: /%s -> %s\n", link.Name, link.Target)
	}
	// Output:
	// restored 24 files and 4 links
	// outside link: /opt/balasys/.ssh/known_hosts -> /dev/null
	// outside link: /opt/balasys/etc/core/certs/ca-bundle.pem -> /etc/ssl/certs/ca-certificates.crt
}
