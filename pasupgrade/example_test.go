package pasupgrade_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pasops/pasupgrade/pasupgrade"
	"github.com/pasops/pasupgrade/pasupgrade/pasupgradetest"
)

// Build the single node plan and list its steps with the guide section each
// implements and the user it runs as.
func ExampleNewUpgradePlan() {
	plan, err := pasupgrade.NewUpgradePlan(pasupgrade.Upgrade480To490, pasupgrade.Options{
		Topology: pasupgrade.TopologySingle,
		WorkDir:  "/opt/balasys/upgrade",
		DebDir:   "/root/pas-4.9.0",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range plan.Steps {
		fmt.Printf("%-22s %-8s %s\n", s.ID, s.Section, s.User)
	}
	// Output:
	// backup                 2.1, 2.2 root
	// pre-upgrade            3.2.1    pas
	// convert-config         3.2.2    pas
	// install-packages       3.2.3    root
	// check-converted-config 3.2.5    pas
	// update-core            3.2.6    pas
	// update-mgmt            3.2.6    pas
	// update-storage         3.2.6    pas
	// restrict-pem-modes     3.2.7    pas
	// checkconfig-mgmt       3.2.8    pas
	// checkconfig-storage    3.2.8    pas
	// restart-mgmt           3.2.9    root
	// restart-storage        3.2.9    root
	// stop-core              3.2.10   root
	// post-upgrade           3.2.11   pas
	// start-core             3.2.12   root
	// verify-versions        3.1      root
	// reapply-failed-nodes   4.2.20   root
}

// Insert an in-house step before core stops, for example to take the node
// out of the load balancer, and another after it starts again.
func ExamplePlan_InsertBefore() {
	plan, err := pasupgrade.NewUpgradePlan(pasupgrade.Upgrade480To490, pasupgrade.Options{
		Topology: pasupgrade.TopologySingle, WorkDir: "/opt/balasys/upgrade", DebDir: "/root/pas-4.9.0",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	drain := pasupgrade.Step{
		ID: "drain", Title: "Take the node out of the load balancer", Section: "local", User: pasupgrade.UserRoot,
		Run: func(context.Context, *pasupgrade.Env) error { return nil },
	}
	undrain := drain
	undrain.ID, undrain.Title = "undrain", "Put the node back into the load balancer"
	if err := plan.InsertBefore("stop-core", drain); err != nil {
		fmt.Println(err)
	}
	if err := plan.InsertAfter("start-core", undrain); err != nil {
		fmt.Println(err)
	}
	fmt.Println(strings.Join(plan.IDs()[12:19], " "))
	// Output:
	// restart-storage drain stop-core post-upgrade start-core undrain verify-versions
}

// Run the multi node plan against the fakes of pasupgradetest, as a unit test
// of in-house automation would, and print what changed.
func ExampleRun() {
	report := &pasupgradetest.Reporter{W: os.Stdout}
	defer report.Close()
	work, err := os.MkdirTemp("", "pasupgrade-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(work)

	sys := pasupgradetest.NewSystem(report, pasupgrade.Upgrade480To490, "core-1")
	sys.Units[pasupgrade.UnitCore] = false
	plan, err := pasupgrade.NewUpgradePlan(pasupgrade.Upgrade480To490, pasupgrade.Options{
		Topology: pasupgrade.TopologyMulti, WorkDir: work, DebDir: "/root/pas-4.9.0",
		AdminPassword: sys.Password,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	clock := pasupgradetest.NewClock(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), time.Second)
	summary, err := pasupgrade.Run(context.Background(), plan, sys.Deps(clock, pasupgrade.ConfigconvEditor{}),
		pasupgrade.RunConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("remote core:", sys.Remote["core-1"])
	fmt.Println("hash:", summary.HashScheme)
	fmt.Println("changes:", len(sys.Log()))
	fmt.Println(sys.Log()[len(sys.Log())-1])
	// Output:
	// remote core: 4.9.0
	// hash: bcrypt
	// changes: 19
	// run[pas] pas-mgmt-deploy-core --restart-core
}

// Describe a later upgrade by what differs from 4.8.0 to 4.9.0; the plans
// take every version, image and file name from the path.
func ExampleUpgradePath() {
	next := pasupgrade.Upgrade480To490
	next.From, next.To = "4.9.0", "4.10.0"
	next.ToolImage = "pas-upgrade-tool:4.10.0"
	next.ExportFile, next.ConvertedFile = "pas-config-4.9.0.yaml", "pas-config-4.10.0.yaml"

	plan, err := pasupgrade.NewUpgradePlan(next, pasupgrade.Options{
		Topology: pasupgrade.TopologyMulti, WorkDir: "/var/lib/pas-upgrade", DebDir: "/var/lib/pas-upgrade/debs",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, id := range []string{"convert-config", "set-image-tag-mgmt", "verify-versions"} {
		s, _ := plan.StepByID(id)
		fmt.Println(s.Title, "|", s.Action)
	}
	// Output:
	// Convert the configuration for the new version | docker run pas-upgrade-tool:4.10.0 convert-config (in the work directory)
	// Set DOCKER_IMAGE_TAG to 4.10.0 for mgmt | edit /opt/balasys/etc/infrastructure/mgmt/docker-compose.conf: DOCKER_IMAGE_TAG=4.10.0
	// Verify that every component runs 4.10.0 | dpkg-query the PAS packages; GET the management API status
}
