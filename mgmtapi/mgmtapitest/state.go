package mgmtapitest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pasops/pasupgrade/mgmtapi"
)

// Files in the state directory.
const (
	runningFile = "running.yaml"
	pendingFile = "pending.yaml"
	stateFile   = "state.json"
)

// versionKey starts the first line of every configuration file.
const versionKey = "pas_config_version:"

// state is everything the server keeps across restarts, apart from the
// configuration files themselves. It is stored as state.json.
type state struct {
	// SyntheticSize, when positive, makes the running configuration a
	// generated stream of that many bytes instead of running.yaml, so tests
	// can export gigabytes without writing them on the server side first.
	SyntheticSize int64 `json:"synthetic_size,omitempty"`

	// RunningVersion and PendingVersion are the pas_config_version of the
	// running and of the pending configuration.
	RunningVersion string `json:"running_version"`
	PendingVersion string `json:"pending_version,omitempty"`

	Pending []mgmtapi.Change `json:"pending"`
	Jobs    map[string]*job  `json:"jobs"`

	// NodeReload is the reload success of each node from the last apply
	// that finished, or from a FailNodeReload fault.
	NodeReload map[string]string `json:"node_reload"`

	NextID int `json:"next_id"`
}

// job is one config apply. Its state is computed from the clock when it is
// read, so no goroutine runs behind it.
type job struct {
	ID       string        `json:"id"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration"`

	// Outcome is "succeed", "fail" or "hang"; FailNodes are the nodes that
	// report FAILED when Outcome is "fail".
	Outcome   string   `json:"outcome"`
	FailNodes []string `json:"fail_nodes,omitempty"`

	// Nodes are the nodes the apply reloads, from the status at its start.
	Nodes []string `json:"nodes"`

	// Result is set once the job has finished.
	Result *mgmtapi.ApplyJob `json:"result,omitempty"`
}

func newState() *state {
	return &state{Jobs: map[string]*job{}, NodeReload: map[string]string{}}
}

// loadState reads state.json from dir, or returns an empty state when the
// directory holds none yet.
func loadState(dir string) (*state, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the simulator state: %w", err)
	}
	st := newState()
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("reading the simulator state %s: %w; remove the file to start afresh",
			filepath.Join(dir, stateFile), err)
	}
	if st.Jobs == nil {
		st.Jobs = map[string]*job{}
	}
	if st.NodeReload == nil {
		st.NodeReload = map[string]string{}
	}
	return st, nil
}

// save writes st to dir/state.json atomically.
func (st *state) save(dir string) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the simulator state: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, stateFile), data)
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// into place, so a crash leaves either the old or the new content.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// configVersion reads the first line of a configuration file and returns
// the version it declares.
func configVersion(r io.Reader) (string, error) {
	line, err := bufio.NewReaderSize(r, 256).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), versionKey)
	version := strings.TrimSpace(rest)
	if !ok || version == "" {
		return "", fmt.Errorf("the first line is not %q followed by a version", versionKey)
	}
	return version, nil
}

// defaultConfig is the running configuration of a new state directory.
func defaultConfig(version string) []byte {
	return []byte(versionKey + " " + version + "\n" +
		"# Running configuration of the PAS management simulator.\n" +
		"services:\n  - name: example\n    upstream: http://127.0.0.1:8080\n")
}

// syntheticReader generates a configuration of size bytes: the version line
// and then repeating filler lines. Equal sizes give equal bytes.
type syntheticReader struct {
	header []byte
	size   int64
	off    int64
}

// fillerBlock repeats one filler line, so copies can take many bytes at once.
var fillerBlock = []byte(strings.Repeat(
	"  - filler: 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop\n", 1024))

func newSyntheticReader(version string, size int64) *syntheticReader {
	return &syntheticReader{header: []byte(versionKey + " " + version + "\nfiller:\n"), size: size}
}

func (s *syntheticReader) Read(p []byte) (int, error) {
	if s.off >= s.size {
		return 0, io.EOF
	}
	if remaining := s.size - s.off; int64(len(p)) > remaining {
		p = p[:remaining]
	}
	n := 0
	for n < len(p) {
		var src []byte
		if h := int64(len(s.header)); s.off < h {
			src = s.header[s.off:]
		} else {
			src = fillerBlock[(s.off-h)%int64(len(fillerBlock)):]
		}
		copied := copy(p[n:], src)
		n += copied
		s.off += int64(copied)
	}
	return n, nil
}
