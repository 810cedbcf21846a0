package configconv

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/registry"

	"github.com/pasops/pasupgrade/runner"
)

// dockerHubServer is the key under which the docker CLI stores Docker Hub
// credentials, and the server name it gives credential helpers.
const dockerHubServer = "https://index.docker.io/v1/"

// CredentialSource finds the credentials for a registry host, such as
// "registry.example.com:5000" or "docker.io". It returns found false when
// it has none.
type CredentialSource interface {
	Credentials(ctx context.Context, host string) (auth registry.AuthConfig, found bool, err error)
}

// DockerConfig reads the credentials "docker login" stored, as the docker
// CLI resolves them: a credHelpers entry for the registry, else the
// credsStore program, else the auths entry's auth field (base64 of
// "user:password") or its username and password fields. Programs are
// named docker-credential-NAME and looked up in PATH.
type DockerConfig struct {
	// Dir is the directory of config.json. Empty means $DOCKER_CONFIG, or
	// ~/.docker without it.
	Dir string
	// Runner runs the credential helper programs. Nil means runner.Local.
	Runner runner.Runner
}

// configFile is the part of config.json that holds credentials.
type configFile struct {
	Auths       map[string]configAuth `json:"auths"`
	CredsStore  string                `json:"credsStore"`
	CredHelpers map[string]string     `json:"credHelpers"`
}

type configAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
}

// helperCredentials is the JSON output of "docker-credential-NAME get".
type helperCredentials struct {
	ServerURL string `json:"ServerURL"`
	Username  string `json:"Username"`
	Secret    string `json:"Secret"`
}

// identityTokenUser is the user name credential helpers give for an
// identity token instead of a password.
const identityTokenUser = "<token>"

func (c DockerConfig) dir() (string, error) {
	if c.Dir != "" {
		return c.Dir, nil
	}
	if dir := os.Getenv("DOCKER_CONFIG"); dir != "" {
		return dir, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the docker configuration: %w; set DOCKER_CONFIG", err)
	}
	return filepath.Join(home, ".docker"), nil
}

// Credentials implements CredentialSource.
func (c DockerConfig) Credentials(ctx context.Context, host string) (registry.AuthConfig, bool, error) {
	dir, err := c.dir()
	if err != nil {
		return registry.AuthConfig{}, false, err
	}
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return registry.AuthConfig{}, false, nil
	}
	if err != nil {
		return registry.AuthConfig{}, false, fmt.Errorf("reading the docker credentials: %w", err)
	}
	var file configFile
	if err := json.Unmarshal(data, &file); err != nil {
		return registry.AuthConfig{}, false, fmt.Errorf("parsing %s: %w; fix it or run 'docker login' again", path, err)
	}

	server := serverAddress(host)
	if helper := file.CredHelpers[host]; helper != "" {
		return c.fromHelper(ctx, helper, server)
	}
	if file.CredsStore != "" {
		return c.fromHelper(ctx, file.CredsStore, server)
	}
	for key, entry := range file.Auths {
		if registryHost(key) == host {
			auth, err := decodeConfigAuth(entry, server)
			if err != nil {
				return registry.AuthConfig{}, false, fmt.Errorf("%s: the entry for %s: %w", path, key, err)
			}
			return auth, true, nil
		}
	}
	return registry.AuthConfig{}, false, nil
}

// fromHelper runs "docker-credential-NAME get" with the server on stdin.
func (c DockerConfig) fromHelper(ctx context.Context, helper, server string) (registry.AuthConfig, bool, error) {
	run := c.Runner
	if run == nil {
		run = &runner.Local{}
	}
	program := "docker-credential-" + helper
	res, err := run.Run(ctx, runner.Command{
		Argv:  []string{program, "get"},
		Stdin: strings.NewReader(server),
	})
	if err != nil {
		var exitErr *runner.ExitError
		if errors.As(err, &exitErr) && bytes.Contains(res.Stdout, []byte("credentials not found")) {
			return registry.AuthConfig{}, false, nil
		}
		if errors.As(err, &exitErr) {
			// A failed helper prints its error message, such as a gpg or
			// D-Bus failure, instead of the credentials.
			reason := ""
			if tail := strings.TrimSpace(exitErr.Tail); tail != "" {
				reason = ": " + tail
			}
			return registry.AuthConfig{}, false, fmt.Errorf("credential helper %s failed for %s with exit code %d%s; run 'docker login' again",
				program, server, exitErr.ExitCode, reason)
		}
		return registry.AuthConfig{}, false, fmt.Errorf("running credential helper %s: %w", program, err)
	}

	var creds helperCredentials
	if err := json.Unmarshal(res.Stdout, &creds); err != nil {
		return registry.AuthConfig{}, false, fmt.Errorf("credential helper %s printed invalid JSON: %w", program, err)
	}
	auth := registry.AuthConfig{ServerAddress: server, Username: creds.Username, Password: creds.Secret}
	if creds.Username == identityTokenUser {
		auth = registry.AuthConfig{ServerAddress: server, IdentityToken: creds.Secret}
	}
	return auth, true, nil
}

func decodeConfigAuth(entry configAuth, server string) (registry.AuthConfig, error) {
	auth := registry.AuthConfig{
		ServerAddress: server,
		Username:      entry.Username,
		Password:      entry.Password,
		IdentityToken: entry.IdentityToken,
	}
	if entry.Auth == "" {
		return auth, nil
	}
	decoded, err := base64.StdEncoding.DecodeString(entry.Auth)
	if err != nil {
		return registry.AuthConfig{}, fmt.Errorf("the auth field is not base64: %w; run 'docker login' again", err)
	}
	user, password, ok := strings.Cut(string(decoded), ":")
	if !ok {
		return registry.AuthConfig{}, errors.New("the auth field is not USER:PASSWORD; run 'docker login' again")
	}
	auth.Username, auth.Password = user, password
	return auth, nil
}

// registryHost reduces a config.json key, which may be a URL such as
// "https://index.docker.io/v1/", to the host the docker CLI matches on.
func registryHost(key string) string {
	host := key
	if _, rest, ok := strings.Cut(host, "://"); ok {
		host = rest
	}
	host, _, _ = strings.Cut(host, "/")
	if host == "index.docker.io" || host == "registry-1.docker.io" {
		return "docker.io"
	}
	return host
}

// serverAddress is the server name the docker CLI gives credential helpers
// and the engine for host.
func serverAddress(host string) string {
	if host == "docker.io" {
		return dockerHubServer
	}
	return host
}

// imageRegistry returns the registry host of an image reference, such as
// "docker.io" for "pas-upgrade-tool:4.9.0".
func imageRegistry(image string) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q: %w", image, err)
	}
	return reference.Domain(named), nil
}

// EncodeRegistryAuth encodes auth for the engine's X-Registry-Auth header:
// URL-safe base64 of its JSON, as registry.EncodeAuthConfig writes it.
func EncodeRegistryAuth(auth registry.AuthConfig) (string, error) {
	return registry.EncodeAuthConfig(auth)
}
