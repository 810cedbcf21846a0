package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// updateCommand returns the pas-*-update command for the named components:
// it migrates their config.yml to the installed package's format, and with
// --image-tag also sets DOCKER_IMAGE_TAG (pas-mgmt-deploy-core does that on
// remote nodes, as the vendor's automation writes the tag from
// common_vars.yml).
func updateCommand(names ...string) func(*environment, []string) error {
	return func(env *environment, args []string) error {
		flags := flag.NewFlagSet("update", flag.ContinueOnError)
		flags.SetOutput(io.Discard)
		tag := flags.String("image-tag", "", "also set DOCKER_IMAGE_TAG to this tag")
		if err := flags.Parse(args); err != nil || flags.NArg() > 0 {
			return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
		}
		for _, name := range names {
			if err := updateComponent(env, components[name], *tag); err != nil {
				return err
			}
		}
		return nil
	}
}

func updateComponent(env *environment, c component, tag string) error {
	installed, err := installedVersion(env, c)
	if err != nil {
		return err
	}
	file := env.path(c.configFile)
	doc, err := readYAML(file)
	if err != nil {
		return err
	}
	s, err := parseSettings(doc, c.configFile)
	if err != nil {
		return err
	}
	switch {
	case s.version == installed:
		fmt.Fprintf(env.stdout, "%s: %s is already in the %s format\n", c.name, c.configFile, installed)
	case s.version == version480 && installed == version490:
		if _, err := migrateConfig(doc, c.configFile); err != nil {
			return err
		}
		if err := writeYAML(file, doc); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%s: migrated %s to config_version %s\n", c.name, c.configFile, installed)
	default:
		return fmt.Errorf("%s has config_version %s, newer than the installed %s %s; "+
			"restore the %s configuration from its backups directory", c.configFile,
			s.version, c.pkg, installed, installed)
	}

	if tag != "" {
		if err := setImageTag(env.path(c.composeFile), tag); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%s: DOCKER_IMAGE_TAG=%s in %s\n", c.name, tag, c.composeFile)
	}
	return nil
}

// checkCommand returns the pas-*-checkconfig command for one component. It
// reports every problem it finds and fails when there is any.
func checkCommand(name string) func(*environment, []string) error {
	return func(env *environment, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
		}
		c := components[name]
		problems := checkComponent(env, c)
		for _, p := range problems {
			fmt.Fprintf(env.stderr, "%s: %v\n", c.name, p)
		}
		if len(problems) > 0 {
			return fmt.Errorf("%d problem(s) in the %s configuration", len(problems), c.name)
		}
		if c.name == "storage" {
			warnGroupReadableCertificates(env)
		}
		fmt.Fprintf(env.stdout, "%s: configuration OK\n", c.name)
		return nil
	}
}

// storageConfigDir is the tree whose certificates 4.9.0 makes owner-only.
const storageConfigDir = "/opt/balasys/etc/storage"

// warnGroupReadableCertificates warns about *.pem files under the storage
// configuration that others than their owner may read. 4.9.0 creates its
// certificates with mode 0600 but leaves existing ones alone, so this is
// a warning and not a problem.
func warnGroupReadableCertificates(env *environment) {
	installed, err := installedVersion(env, components["storage"])
	if err != nil || installed == version480 {
		return
	}
	root := env.path(storageConfigDir)
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !strings.HasSuffix(path, ".pem") {
			return nil
		}
		info, err := d.Info()
		if err == nil && info.Mode().Perm()&0o077 != 0 {
			fmt.Fprintf(env.stderr, "storage: warning: %s has mode %04o; to make it readable by "+
				"its owner only, run: find %q -type f -name '*.pem' -exec chmod 600 {} +\n",
				storageConfigDir+strings.TrimPrefix(path, root), info.Mode().Perm(), storageConfigDir+"/")
		}
		return nil
	})
}

// checkComponent returns what keeps c from starting with its current files.
// Components run the same checks before they start.
func checkComponent(env *environment, c component) []error {
	var problems []error
	s, err := loadConfig(env, c)
	if err != nil {
		problems = append(problems, err)
	}
	if err := checkImageTag(env, c); err != nil {
		problems = append(problems, err)
	}
	if err == nil && c.name == "storage" {
		if err := checkCertificates(env, s); err != nil {
			problems = append(problems, err)
		}
	}
	if err == nil && c.name == "mgmt" {
		users := s.values["users_file"]
		if _, err := os.Stat(env.path(users)); err != nil {
			problems = append(problems, fmt.Errorf("users_file: %w", err))
		}
	}
	return problems
}

// checkImageTag checks that DOCKER_IMAGE_TAG names the installed version,
// because the real components run the image with that tag.
func checkImageTag(env *environment, c component) error {
	installed, err := installedVersion(env, c)
	if err != nil {
		return err
	}
	tag, err := imageTag(env.path(c.composeFile))
	if err != nil {
		return err
	}
	if tag != installed {
		return fmt.Errorf("DOCKER_IMAGE_TAG=%s in %s but %s %s is installed; set it to %s",
			tag, c.composeFile, c.pkg, installed, installed)
	}
	return nil
}

// checkCertificates loads the storage certificate and key.
func checkCertificates(env *environment, s settings) error {
	cert, key := s.values["certificate"], s.values["private_key"]
	if cert == "" || key == "" {
		return errors.New("certificate and private_key must both be set")
	}
	if _, err := tls.LoadX509KeyPair(env.path(cert), env.path(key)); err != nil {
		return fmt.Errorf("loading the storage certificate %s: %w", cert, err)
	}
	return nil
}

// resetConfig writes the package's default configuration over c's files,
// as the 4.9.0 installer does when its overwrite-config question is
// answered yes. The maintainer script has already copied the old files
// into the backups directories. The listening address and port and the
// other node-local keys named in carriedKeys are carried over from the old
// file so that a node on non-default ports keeps working.
func resetConfig(env *environment, c component) error {
	defaults := "/opt/balasys/usr/share/" + c.pkg + "/defaults"
	for _, file := range []string{c.configFile, c.composeFile} {
		rel := strings.TrimPrefix(file, "/opt/balasys/etc/")
		data, err := os.ReadFile(env.path(filepath.Join(defaults, rel)))
		if err != nil {
			return fmt.Errorf("reading the default configuration: %w", err)
		}
		if file == c.configFile {
			if data, err = carryOver(env, c, data); err != nil {
				return err
			}
		}
		if err := replaceFile(env.path(file), data); err != nil {
			return err
		}
	}
	return nil
}

// carriedKeys are the keys resetConfig keeps from the old configuration.
var carriedKeys = []string{"upstream", "status_file", "tls_cert", "tls_key", "enable_control"}

func carryOver(env *environment, c component, defaults []byte) ([]byte, error) {
	old, err := readYAML(env.path(c.configFile))
	if err != nil {
		return nil, err
	}
	if _, err := migrateConfig(old, c.configFile); err != nil {
		return nil, fmt.Errorf("reading the settings to keep: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(defaults, &doc); err != nil {
		return nil, fmt.Errorf("parsing the default %s: %w", c.configFile, err)
	}
	oldRoot, newRoot := mappingOf(old), mappingOf(&doc)
	if newRoot == nil {
		return nil, fmt.Errorf("the default %s is not a YAML mapping", c.configFile)
	}
	if listen := lookup(oldRoot, "listen"); listen != nil {
		if target := lookup(newRoot, "listen"); target != nil {
			*target = *listen
		}
	}
	for _, key := range carriedKeys {
		if v := lookup(oldRoot, key); v != nil && v.Kind == yaml.ScalarNode {
			setScalar(newRoot, key, v.Value)
			// Keep the quoting style, because "" written plain reads back
			// as null.
			lookup(newRoot, key).Style = v.Style
		}
	}

	var out strings.Builder
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return []byte(out.String()), nil
}

// fileOwner returns the uid and gid of info's file.
func fileOwner(info os.FileInfo) (uid, gid int, ok bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
