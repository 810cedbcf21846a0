package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// nodeConfig is /etc/pas-lab/node.json, written by the lab when it starts
// a node.
type nodeConfig struct {
	// Node and Role name this node's entry in the status file.
	Node string `json:"node"`
	Role string `json:"role"`
	// StatusFile is the status file shared by the lab's nodes. Empty
	// means no status file is kept.
	StatusFile string `json:"status_file"`
}

// Status, Node and Component are the JSON of the management API's status
// reply (mgmtapi.Status), which pas-mgmt-sim serves from the status file.
// They are declared here so that the stand-in builds without the client
// library.
type (
	Status struct {
		Nodes []Node `json:"nodes"`
	}
	Node struct {
		Name       string      `json:"name"`
		Role       string      `json:"role"`
		Components []Component `json:"components"`
	}
	Component struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		State   string `json:"state"`
	}
)

// pasUnit is one simulated PAS component and the package that ships it.
type pasUnit struct {
	component, unit, pkg string
}

var pasUnits = []pasUnit{
	{"mgmt", "proxedo-api-security-mgmt.service", "proxedo-api-security-mgmt"},
	{"storage", "proxedo-api-security-storage.service", "proxedo-api-security-storage"},
	{"core", "proxedo-api-security.service", "proxedo-api-security"},
	{"ha", "proxedo-api-security-ha.service", "proxedo-api-security"},
}

// updateStatusFile rewrites this node's entry in the status file from the
// current unit states. Other nodes' entries are kept. Failures are logged
// to stderr and otherwise ignored, because a missing status must not fail
// a service start.
func updateStatusFile(env *environment) {
	if err := writeStatusFile(env); err != nil {
		fmt.Fprintf(os.Stderr, "pas-systemctl: updating the status file: %v\n", err)
	}
}

func writeStatusFile(env *environment) error {
	data, err := os.ReadFile(env.path(nodeConfigFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var cfg nodeConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("reading %s: %w", nodeConfigFile, err)
	}
	if cfg.StatusFile == "" {
		return nil
	}

	// The nodes of a lab share the file, so each update holds a lock
	// around its read, change and write.
	lock, err := os.OpenFile(cfg.StatusFile+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}

	var st Status
	if old, err := os.ReadFile(cfg.StatusFile); err == nil && len(old) > 0 {
		if err := json.Unmarshal(old, &st); err != nil {
			return fmt.Errorf("reading %s: %w", cfg.StatusFile, err)
		}
	}
	entry := Node{Name: cfg.Node, Role: cfg.Role, Components: nodeComponents(env)}
	replaced := false
	for i := range st.Nodes {
		if st.Nodes[i].Name == cfg.Node {
			st.Nodes[i], replaced = entry, true
		}
	}
	if !replaced {
		st.Nodes = append(st.Nodes, entry)
	}
	out, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.StatusFile), 0o755); err != nil {
		return err
	}
	return writeAtomic(cfg.StatusFile, append(out, '\n'), 0o644)
}

// nodeComponents lists the PAS units in use with their state. A unit is in
// use when it is enabled or has been started. The core package ships the
// HA unit to nodes that never run HA, and those must not report it.
func nodeComponents(env *environment) []Component {
	components := []Component{}
	for _, p := range pasUnits {
		if _, err := loadUnit(env, p.unit); err != nil {
			continue
		}
		if _, err := os.Stat(statePath(env, p.unit)); err != nil && !enabled(env, p.unit) {
			continue
		}
		state := "stopped"
		switch readState(env, p.unit).State {
		case stateActive:
			state = "running"
		case stateFailed:
			state = "failed"
		}
		components = append(components, Component{
			Name: p.component, Version: packageVersion(p.pkg), State: state,
		})
	}
	return components
}

// packageVersion returns the installed version of pkg from dpkg, or ""
// when it is not installed or dpkg-query is missing.
func packageVersion(pkg string) string {
	out, err := exec.Command("dpkg-query", "--showformat=${Version}", "--show", pkg).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
