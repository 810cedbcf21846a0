package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// component describes one simulated PAS component and the files it reads.
type component struct {
	name        string // core, ha, mgmt or storage
	pkg         string // the Debian package that ships it
	unit        string // the systemd unit that runs it
	configFile  string // its config.yml
	composeFile string // the docker-compose.conf holding DOCKER_IMAGE_TAG
}

const (
	corePackage    = "proxedo-api-security"
	mgmtPackage    = "proxedo-api-security-mgmt"
	storagePackage = "proxedo-api-security-storage"
)

var components = map[string]component{
	"core": {
		name: "core", pkg: corePackage, unit: "proxedo-api-security",
		configFile:  "/opt/balasys/etc/core/config.yml",
		composeFile: "/opt/balasys/etc/infrastructure/pas/docker-compose.conf",
	},
	"ha": {
		name: "ha", pkg: corePackage, unit: "proxedo-api-security-ha",
		configFile:  "/opt/balasys/etc/ha/config.yml",
		composeFile: "/opt/balasys/etc/infrastructure/pas/docker-compose.conf",
	},
	"mgmt": {
		name: "mgmt", pkg: mgmtPackage, unit: "proxedo-api-security-mgmt",
		configFile:  "/opt/balasys/etc/mgmt/config.yml",
		composeFile: "/opt/balasys/etc/infrastructure/mgmt/docker-compose.conf",
	},
	"storage": {
		name: "storage", pkg: storagePackage, unit: "proxedo-api-security-storage",
		configFile:  "/opt/balasys/etc/storage/config.yml",
		composeFile: "/opt/balasys/etc/infrastructure/storage/docker-compose.conf",
	},
}

// Configuration format versions. 4.8.0 keeps the listening socket in the
// flat keys listen_address and listen_port; 4.9.0 moves them into a listen
// mapping, so a 4.9.0 component cannot read an unmigrated file.
const (
	version480 = "4.8.0"
	version490 = "4.9.0"
)

// versionFile returns where the package records its installed version.
func versionFile(pkg string) string {
	return "/opt/balasys/usr/share/" + pkg + "/version"
}

// installedVersion returns the version of the package that ships c.
func installedVersion(env *environment, c component) (string, error) {
	data, err := os.ReadFile(env.path(versionFile(c.pkg)))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s is not installed (%s is missing)", c.pkg, versionFile(c.pkg))
	}
	if err != nil {
		return "", fmt.Errorf("reading the installed version of %s: %w", c.pkg, err)
	}
	return strings.TrimSpace(string(data)), nil
}

// settings is a component configuration in the version-independent form
// the components use.
type settings struct {
	version string
	address string
	port    int
	values  map[string]string // other top-level scalar keys
}

// loadConfig reads c's configuration and checks that its format matches
// the installed package version.
func loadConfig(env *environment, c component) (settings, error) {
	installed, err := installedVersion(env, c)
	if err != nil {
		return settings{}, err
	}
	doc, err := readYAML(env.path(c.configFile))
	if err != nil {
		return settings{}, err
	}
	s, err := parseSettings(doc, c.configFile)
	if err != nil {
		return settings{}, err
	}
	if s.version != installed {
		return settings{}, fmt.Errorf("%s has config_version %s but %s %s is installed; "+
			"run %s to migrate it", c.configFile, s.version, c.pkg, installed, updateCommandFor(c))
	}
	return s, nil
}

func updateCommandFor(c component) string {
	switch c.name {
	case "mgmt":
		return "pas-mgmt-update"
	case "storage":
		return "pas-storage-update"
	default:
		return "pas-update"
	}
}

// parseSettings reads the settings out of a parsed config.yml named file.
func parseSettings(doc *yaml.Node, file string) (settings, error) {
	root := mappingOf(doc)
	if root == nil {
		return settings{}, fmt.Errorf("%s is not a YAML mapping", file)
	}
	s := settings{values: map[string]string{}}
	s.version = scalar(root, "config_version")
	var portText string
	switch s.version {
	case version480:
		if listen := lookup(root, "listen"); listen != nil {
			return settings{}, fmt.Errorf("%s: config_version 4.8.0 has no listen mapping; "+
				"use listen_address and listen_port", file)
		}
		s.address, portText = scalar(root, "listen_address"), scalar(root, "listen_port")
	case version490:
		if lookup(root, "listen_port") != nil {
			return settings{}, fmt.Errorf("%s: listen_port is the 4.8.0 key; "+
				"config_version 4.9.0 uses listen.port", file)
		}
		listen := lookup(root, "listen")
		if listen == nil || listen.Kind != yaml.MappingNode {
			return settings{}, fmt.Errorf("%s: the listen mapping is missing", file)
		}
		s.address, portText = scalar(listen, "address"), scalar(listen, "port")
	case "":
		return settings{}, fmt.Errorf("%s: config_version is missing", file)
	default:
		return settings{}, fmt.Errorf("%s: config_version %q is not 4.8.0 or 4.9.0", file, s.version)
	}

	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return settings{}, fmt.Errorf("%s: listening port %q is not a number from 1 to 65535",
			file, portText)
	}
	s.port = port
	if s.address == "" {
		s.address = "127.0.0.1"
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if v := root.Content[i+1]; v.Kind == yaml.ScalarNode {
			s.values[root.Content[i].Value] = v.Value
		}
	}
	return s, nil
}

// migrateConfig rewrites a 4.8.0 document in the 4.9.0 format in place. It
// returns false when the document is already in the 4.9.0 format.
func migrateConfig(doc *yaml.Node, file string) (bool, error) {
	s, err := parseSettings(doc, file)
	if err != nil {
		return false, err
	}
	if s.version == version490 {
		return false, nil
	}

	root := mappingOf(doc)
	setScalar(root, "config_version", version490)
	address := lookup(root, "listen_address")
	port := lookup(root, "listen_port")
	listen := &yaml.Node{Kind: yaml.MappingNode}
	if address != nil {
		setScalar(listen, "address", address.Value)
	}
	setScalar(listen, "port", port.Value)

	// The listen mapping takes the place of listen_port, so the file keeps
	// its order and the comments around it.
	var content []*yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		key := root.Content[i]
		switch key.Value {
		case "listen_address":
			continue
		case "listen_port":
			content = append(content, &yaml.Node{Kind: yaml.ScalarNode, Value: "listen",
				HeadComment: key.HeadComment}, listen)
			continue
		}
		content = append(content, key, root.Content[i+1])
	}
	root.Content = content
	return true, nil
}

// setListenPort sets the port c listens on in its config.yml, in the
// file's own format: listen_port in 4.8.0, listen.port from 4.9.0.
// pas-mgmt-deploy-core runs it on a core node with the port the
// inventory gives the node, as the vendor's deployment renders node
// settings from host variables.
func setListenPort(env *environment, c component, text string) error {
	port, err := strconv.Atoi(text)
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("%w: port %q is not a number from 1 to 65535", errUsage, text)
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
	target := mappingOf(doc)
	key := "listen_port"
	if s.version == version490 {
		target, key = lookup(target, "listen"), "port"
	}
	setScalar(target, key, strconv.Itoa(port))
	return writeYAML(file, doc)
}

// readYAML parses file into a document node.
func readYAML(file string) (*yaml.Node, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", file, err)
	}
	return &doc, nil
}

// writeYAML writes doc to file through a temporary file and a rename,
// keeping the file's mode and owner.
func writeYAML(file string, doc *yaml.Node) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("encoding %s: %w", file, err)
	}
	return replaceFile(file, buf.Bytes())
}

// replaceFile atomically replaces file with data, keeping its mode and,
// when the caller may set it, its owner.
func replaceFile(file string, data []byte) error {
	info, err := os.Stat(file)
	if err != nil {
		return err
	}
	tmp := file + ".pas-new"
	if err := os.WriteFile(tmp, data, info.Mode().Perm()); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Chmod(tmp, info.Mode().Perm()); err != nil {
		os.Remove(tmp)
		return err
	}
	if uid, gid, ok := fileOwner(info); ok && (uid != os.Getuid() || gid != os.Getgid()) {
		if err := os.Lchown(tmp, uid, gid); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("keeping the owner of %s: %w", file, err)
		}
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replacing %s: %w", file, err)
	}
	return nil
}

// mappingOf returns the top-level mapping of a document node, or nil.
func mappingOf(doc *yaml.Node) *yaml.Node {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	return n
}

// lookup returns the value node of key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// scalar returns the value of key in m when it is a scalar, else "".
func scalar(m *yaml.Node, key string) string {
	if v := lookup(m, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// setScalar sets key in mapping m to value, appending the key if missing.
func setScalar(m *yaml.Node, key, value string) {
	if v := lookup(m, key); v != nil {
		*v = yaml.Node{Kind: yaml.ScalarNode, Value: value, LineComment: v.LineComment}
		return
	}
	m.Content = append(m.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Value: value})
}

// imageTag returns DOCKER_IMAGE_TAG from an env-style docker-compose.conf.
func imageTag(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading the image tag: %w", err)
	}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		key, value, ok := envLine(scanner.Text())
		if ok && key == "DOCKER_IMAGE_TAG" {
			return value, nil
		}
	}
	return "", fmt.Errorf("%s has no DOCKER_IMAGE_TAG line", file)
}

// setImageTag sets DOCKER_IMAGE_TAG in file to tag, keeping every other line.
func setImageTag(file, tag string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading the image tag: %w", err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	found := false
	for i, line := range lines {
		if key, _, ok := envLine(line); ok && key == "DOCKER_IMAGE_TAG" {
			lines[i] = replaceEnvValue(line, tag)
			found = true
		}
	}
	text := strings.Join(lines, "")
	if !found {
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		text += "DOCKER_IMAGE_TAG=" + tag + "\n"
	}
	return replaceFile(file, []byte(text))
}

// replaceEnvValue returns the KEY=VALUE line with value in place of the
// old value, keeping an "export " prefix and the quote character.
func replaceEnvValue(line, value string) string {
	eq := strings.Index(line, "=")
	old := strings.TrimSpace(line[eq+1:])
	quote := ""
	if len(old) > 0 && (old[0] == '"' || old[0] == '\'') {
		quote = old[:1]
	}
	return line[:eq+1] + quote + value + quote + "\n"
}

// envLine splits a KEY=VALUE line, allowing an "export " prefix and quotes.
func envLine(line string) (key, value string, ok bool) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return "", "", false
	}
	line = strings.TrimPrefix(line, "export ")
	key, value, ok = strings.Cut(line, "=")
	if !ok {
		return "", "", false
	}
	value = strings.Trim(strings.TrimSpace(value), `"'`)
	return strings.TrimSpace(key), value, true
}
