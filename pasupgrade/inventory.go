package pasupgrade

import (
	"fmt"
	"maps"
	"net"
	"slices"

	"go.yaml.in/yaml/v3"
)

// InventoryHosts returns the hosts of an Ansible YAML inventory such as the
// deployment tool's inventory.yml. A host is a key of a "hosts" mapping at
// any depth, replaced by its ansible_host value where one is set. Where
// ansible_port is set, ":PORT" is appended, and where ansible_user is set,
// "USER@" is prepended: Remote logs in to such a host as USER instead of
// RemoteAccess.User. The result is sorted and free of duplicates.
func InventoryHosts(data []byte) ([]string, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parsing the inventory %s: %w", InventoryPath, err)
	}
	found := map[string]bool{}
	collectHosts(doc, found)
	if len(found) == 0 {
		return nil, fmt.Errorf("the inventory %s lists no hosts: add the core nodes under a hosts: key", InventoryPath)
	}
	return slices.Sorted(maps.Keys(found)), nil
}

func collectHosts(node any, found map[string]bool) {
	m, ok := node.(map[string]any)
	if !ok {
		return
	}
	for key, value := range m {
		if key == "hosts" {
			addHosts(value, found)
			continue
		}
		collectHosts(value, found)
	}
}

func addHosts(value any, found map[string]bool) {
	hosts, ok := value.(map[string]any)
	if !ok {
		return
	}
	for name, vars := range hosts {
		address := name
		if v, ok := vars.(map[string]any); ok {
			if h, ok := v["ansible_host"].(string); ok && h != "" {
				address = h
			}
			if port, ok := v["ansible_port"]; ok && port != nil {
				address = net.JoinHostPort(address, fmt.Sprint(port))
			}
			if user, ok := v["ansible_user"].(string); ok && user != "" {
				address = user + "@" + address
			}
		}
		found[address] = true
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
