package pasupgrade

import (
	"strings"

	"github.com/pasops/pasupgrade/configconv"
)

// ConfigconvEditor is the ConfigEditor of the configconv package, which
// keeps comments, quoting and layout byte for byte.
type ConfigconvEditor struct{}

// SetEnv sets key in a docker-compose.conf style file.
func (ConfigconvEditor) SetEnv(data []byte, key, value string) ([]byte, error) {
	return configconv.SetEnvValue(data, key, value)
}

// SetYAML sets the scalar at keyPath in a YAML document such as
// common_vars.yml.
func (ConfigconvEditor) SetYAML(data []byte, keyPath []string, value string) ([]byte, error) {
	return configconv.SetYAMLValues(data, map[string]string{strings.Join(keyPath, "."): value})
}
