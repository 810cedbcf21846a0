package configconv

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/registry"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeDockerConfig writes config.json into a new directory and returns it.
func writeDockerConfig(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(content), 0o600))
	return dir
}

// installCredentialHelper puts docker-credential-NAME on PATH. It prints
// output and stores its stdin in the returned file.
func installCredentialHelper(t *testing.T, name, output string, exitCode int) string {
	t.Helper()
	bin := t.TempDir()
	stdinFile := filepath.Join(bin, "stdin")
	script := "#!/bin/sh\n" +
		"[ \"$1\" = get ] || exit 9\n" +
		"cat > '" + stdinFile + "'\n" +
		"printf '%s' '" + output + "'\n" +
		"exit " + string(rune('0'+exitCode)) + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(bin, "docker-credential-"+name), []byte(script), 0o755))
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return stdinFile
}

// passwordWithBase64Symbols returns a password whose "user:password" has
// both "+" and "/" in standard base64, where URL-safe base64 differs.
func passwordWithBase64Symbols(t *testing.T, user string) string {
	t.Helper()
	const symbols = "?>~"
	for n := 0; n < 3*3*3*3*3*3; n++ {
		password := "s3cr"
		for i, rest := 0, n; i < 6; i, rest = i+1, rest/3 {
			password += string(symbols[rest%3])
		}
		encoded := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
		if strings.Contains(encoded, "+") && strings.Contains(encoded, "/") {
			return password
		}
	}
	t.Fatalf("no password for user %q has both + and / in base64", user)
	return ""
}

func TestDockerConfigCredentials(t *testing.T) {
	password := passwordWithBase64Symbols(t, "alice")
	auth := base64.StdEncoding.EncodeToString([]byte("alice:" + password))

	tests := []struct {
		name      string
		config    string
		host      string
		wantFound bool
		want      registry.AuthConfig
	}{
		{
			"auth field", `{"auths":{"registry.example.com":{"auth":"` + auth + `"}}}`,
			"registry.example.com", true,
			registry.AuthConfig{Username: "alice", Password: password, ServerAddress: "registry.example.com"},
		},
		{
			"key as URL", `{"auths":{"https://registry.example.com/v2/":{"auth":"` + auth + `"}}}`,
			"registry.example.com", true,
			registry.AuthConfig{Username: "alice", Password: password, ServerAddress: "registry.example.com"},
		},
		{
			"docker hub key", `{"auths":{"https://index.docker.io/v1/":{"auth":"` + auth + `"}}}`,
			"docker.io", true,
			registry.AuthConfig{Username: "alice", Password: password, ServerAddress: dockerHubServer},
		},
		{
			"username and password fields", `{"auths":{"r.example:5000":{"username":"bob","password":"pw"}}}`,
			"r.example:5000", true,
			registry.AuthConfig{Username: "bob", Password: "pw", ServerAddress: "r.example:5000"},
		},
		{
			"identity token", `{"auths":{"r.example":{"identitytoken":"tok"}}}`,
			"r.example", true,
			registry.AuthConfig{IdentityToken: "tok", ServerAddress: "r.example"},
		},
		{"other registry only", `{"auths":{"other.example":{"auth":"` + auth + `"}}}`, "registry.example.com", false, registry.AuthConfig{}},
		{"empty config", `{}`, "registry.example.com", false, registry.AuthConfig{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			config := DockerConfig{Dir: writeDockerConfig(t, tt.config)}
			got, found, err := config.Credentials(t.Context(), tt.host)
			require.NoError(t, err)
			assert.Equal(t, tt.wantFound, found)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestDockerConfigCredentialErrors(t *testing.T) {
	tests := []struct {
		name, config, wantErr string
	}{
		{"invalid JSON", `{"auths":`, "parsing"},
		{"auth not base64", `{"auths":{"r.example":{"auth":"%%%"}}}`, "not base64"},
		{"auth without colon", `{"auths":{"r.example":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("alice")) + `"}}}`, "not USER:PASSWORD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := DockerConfig{Dir: writeDockerConfig(t, tt.config)}.Credentials(t.Context(), "r.example")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestDockerConfigMissingFile(t *testing.T) {
	_, found, err := DockerConfig{Dir: t.TempDir()}.Credentials(t.Context(), "r.example")
	require.NoError(t, err)
	assert.False(t, found)
}

func TestDockerConfigCredentialHelpers(t *testing.T) {
	tests := []struct {
		name      string
		config    string
		helper    string
		output    string
		exitCode  int
		wantFound bool
		want      registry.AuthConfig
		wantErr   string
	}{
		{
			"creds store", `{"credsStore":"cctest"}`, "cctest",
			`{"ServerURL":"r.example:5000","Username":"carol","Secret":"pw"}`, 0, true,
			registry.AuthConfig{Username: "carol", Password: "pw", ServerAddress: "r.example:5000"}, "",
		},
		{
			"cred helper wins over store", `{"credsStore":"missing","credHelpers":{"r.example:5000":"cctest"}}`, "cctest",
			`{"ServerURL":"r.example:5000","Username":"dave","Secret":"pw"}`, 0, true,
			registry.AuthConfig{Username: "dave", Password: "pw", ServerAddress: "r.example:5000"}, "",
		},
		{
			"identity token", `{"credsStore":"cctest"}`, "cctest",
			`{"ServerURL":"r.example:5000","Username":"<token>","Secret":"tok"}`, 0, true,
			registry.AuthConfig{IdentityToken: "tok", ServerAddress: "r.example:5000"}, "",
		},
		{
			"not stored", `{"credsStore":"cctest"}`, "cctest",
			"credentials not found in native keychain", 1, false, registry.AuthConfig{}, "",
		},
		{
			"helper fails", `{"credsStore":"cctest"}`, "cctest",
			"dbus error", 1, false, registry.AuthConfig{}, "credential helper docker-credential-cctest failed for r.example:5000 with exit code 1: dbus error",
		},
		{
			"helper prints garbage", `{"credsStore":"cctest"}`, "cctest",
			"garbage", 0, false, registry.AuthConfig{}, "invalid JSON",
		},
		{
			"helper missing", `{"credsStore":"nosuchhelper"}`, "cctest",
			"", 0, false, registry.AuthConfig{}, "docker-credential-nosuchhelper",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdinFile := installCredentialHelper(t, tt.helper, tt.output, tt.exitCode)
			config := DockerConfig{Dir: writeDockerConfig(t, tt.config)}

			got, found, err := config.Credentials(t.Context(), "r.example:5000")
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.NotContains(t, err.Error(), "pw")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantFound, found)
			assert.Equal(t, tt.want, got)
			stdin, err := os.ReadFile(stdinFile)
			require.NoError(t, err)
			assert.Equal(t, "r.example:5000", string(stdin), "the helper gets the server on stdin")
		})
	}
}

func TestEncodeRegistryAuthURLSafe(t *testing.T) {
	auth := registry.AuthConfig{Username: "alice", Password: "??>>??>>~~", ServerAddress: "r.example"}
	encoded, err := EncodeRegistryAuth(auth)
	require.NoError(t, err)

	raw, err := json.Marshal(auth)
	require.NoError(t, err)
	standard := base64.StdEncoding.EncodeToString(raw)
	require.True(t, strings.ContainsAny(standard, "+/"), "the fixture must exercise + or /: %s", standard)
	assert.NotContains(t, encoded, "+")
	assert.NotContains(t, encoded, "/")

	decoded, err := base64.URLEncoding.DecodeString(encoded)
	require.NoError(t, err)
	var back registry.AuthConfig
	require.NoError(t, json.Unmarshal(decoded, &back))
	assert.Equal(t, auth, back)
}

func TestImageRegistry(t *testing.T) {
	tests := []struct{ image, want string }{
		{"pas-upgrade-tool:4.9.0", "docker.io"},
		{"balasys/pas-upgrade-tool:4.9.0", "docker.io"},
		{"registry.example.com/pas/tool:4.9.0", "registry.example.com"},
		{"127.0.0.1:5000/pas/tool:4.9.0", "127.0.0.1:5000"},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			got, err := imageRegistry(tt.image)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	_, err := imageRegistry("UPPER:case:bad")
	assert.Error(t, err)
}
