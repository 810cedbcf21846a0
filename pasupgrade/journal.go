package pasupgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// File names in the work directory.
const (
	// JournalFile records a run; see Journal.
	JournalFile = "pasupgrade-journal.json"
	// LockFile is held while a run is in progress.
	LockFile = "pasupgrade.lock"

	// DefaultNodeLock is the node-wide lock file the CLI holds during an
	// upgrade or restore, whatever the work directory.
	DefaultNodeLock = "/run/lock/pasupgrade.lock"
)

// journalFormat is the version of the journal's JSON layout.
const journalFormat = 1

// Sentinel errors of runs, for callers to branch on.
var (
	// ErrLocked means another run holds the work directory's lock.
	ErrLocked = errors.New("pasupgrade: another run is in progress")
	// ErrNoJournal means --resume found no journal to resume.
	ErrNoJournal = errors.New("pasupgrade: no journal to resume")
	// ErrJournalMismatch means the journal records a different plan.
	ErrJournalMismatch = errors.New("pasupgrade: the journal records a different plan")
	// ErrUnfinishedRun means a fresh run found the journal of a run that
	// stopped midway.
	ErrUnfinishedRun = errors.New("pasupgrade: a previous run did not finish")
	// ErrStaleJournal means the journal records changes the node no longer
	// has, such as packages installed at the new version on a node that
	// was restored since: resuming would run the later steps on the wrong
	// version. Start a new run with RunConfig.NewRun.
	ErrStaleJournal = errors.New("pasupgrade: the journal does not match the node")
)

// StepRecord is one step's entry in the journal.
type StepRecord struct {
	ID      string     `json:"id"`
	Start   time.Time  `json:"start"`
	End     *time.Time `json:"end,omitempty"`
	Outcome string     `json:"outcome"`
	// Output is "sha256:HEX" of the step's command output, so that two
	// runs can be compared without keeping the output.
	Output string `json:"output_digest,omitempty"`
	Error  string `json:"error,omitempty"`
	// Waited is the part of the step's time spent waiting on commands,
	// dpkg, the upgrade tool, the management API, systemd and remote
	// nodes. The rest is the tool's own work.
	Waited time.Duration `json:"waited_ns,omitempty"`
}

// Journal is the record of a run, kept as JSON in the work directory and
// replaced atomically after every step. It never holds the admin password.
type Journal struct {
	Format      int          `json:"format"`
	Kind        Kind         `json:"kind"`
	ToolVersion string       `json:"tool_version"`
	From        string       `json:"from"`
	To          string       `json:"to"`
	Options     Options      `json:"options"`
	Plan        []StepInfo   `json:"plan"`
	State       State        `json:"state"`
	Steps       []StepRecord `json:"steps"`
	Started     time.Time    `json:"started"`
	Finished    *time.Time   `json:"finished,omitempty"`
	// Waited is the time every run of the journal spent waiting on the
	// system, in its preflight checks and confirmation as well as in its
	// steps. For a run that was not resumed, Finished minus Started
	// minus Waited is the tool's own time.
	Waited time.Duration `json:"waited_ns,omitempty"`

	path string
}

// Path returns the journal's file name.
func (j *Journal) Path() string { return j.path }

// ReadJournal reads the journal in dir. It wraps fs.ErrNotExist when there
// is none.
func ReadJournal(dir string) (*Journal, error) {
	path := filepath.Join(dir, JournalFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the journal: %w", err)
	}
	var j Journal
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("reading the journal %s: %w; move it away to start afresh", path, err)
	}
	if j.Format != journalFormat {
		return nil, fmt.Errorf("the journal %s has format %d, this tool writes %d: finish the run with the tool version that started it (%s)", path, j.Format, journalFormat, j.ToolVersion)
	}
	j.path = path
	return &j, nil
}

// record returns the entry of step id, or nil.
func (j *Journal) record(id string) *StepRecord {
	i := slices.IndexFunc(j.Steps, func(r StepRecord) bool { return r.ID == id })
	if i < 0 {
		return nil
	}
	return &j.Steps[i]
}

// lastDone returns the id of the last step whose outcome is done.
func (j *Journal) lastDone() string {
	for i := len(j.Steps) - 1; i >= 0; i-- {
		if j.Steps[i].Outcome == OutcomeDone {
			return j.Steps[i].ID
		}
	}
	return ""
}

// interrupted returns the step a run stopped at, or "".
func (j *Journal) interrupted() string {
	for _, r := range j.Steps {
		if r.Outcome == OutcomeRunning || r.Outcome == OutcomeFailed {
			return r.ID
		}
	}
	return ""
}

// stoppedAt describes where an unfinished run stopped: at the step that was
// running or failed, or after the last step done when it was killed
// between two steps.
func (j *Journal) stoppedAt() string {
	if id := j.interrupted(); id != "" {
		return "at step " + id
	}
	return "after step " + j.lastDone()
}

// matches reports whether plan has the journal's steps, in order.
func (j *Journal) matches(plan *Plan) error {
	ids := make([]string, len(j.Plan))
	for i, s := range j.Plan {
		ids[i] = s.ID
	}
	if j.Kind != plan.Kind || !slices.Equal(ids, plan.IDs()) {
		return fmt.Errorf("%w: it has the %s steps %s, this run has the %s steps %s; resume with the options of the first run (%s)",
			ErrJournalMismatch, j.Kind, strings.Join(ids, ","), plan.Kind, strings.Join(plan.IDs(), ","), describeOptions(j.Options))
	}
	return nil
}

func describeOptions(o Options) string {
	s := "topology " + string(o.Topology)
	if o.HA {
		s += ", HA"
	}
	if o.CoreOnMgmt {
		s += ", core on the management node"
	}
	if o.KeepPEMModes {
		s += ", PEM modes kept"
	}
	return s
}

// save replaces the journal file atomically: it writes a temporary file in
// the same directory, syncs it and renames it over the old one.
func (j *Journal) save() error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the journal: %w", err)
	}
	dir := filepath.Dir(j.path)
	tmp, err := os.CreateTemp(dir, ".journal-*")
	if err != nil {
		return fmt.Errorf("writing the journal in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the journal %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing the journal %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the journal %s: %w", tmp.Name(), err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("setting the journal's mode: %w", err)
	}
	if err := os.Rename(tmp.Name(), j.path); err != nil {
		return fmt.Errorf("replacing the journal %s: %w", j.path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Lock is an exclusive lock on a work directory, held with flock(2) so that
// it is released when the process dies.
type Lock struct {
	f *os.File
}

// AcquireLock takes the lock of dir without waiting. It fails with an error
// wrapping ErrLocked, naming the holder's process id, when another process
// holds it.
func AcquireLock(dir string) (*Lock, error) {
	return AcquireLockFile(filepath.Join(dir, LockFile))
}

// AcquireLockFile takes the lock held in the file at path, creating the
// file and its directory when missing, as AcquireLock does for a work
// directory.
func AcquireLockFile(path string) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the directory of the lock %s: %w", path, err)
	}
	// The work directory belongs to pas, so the lock is not followed
	// through a symbolic link: root would truncate the link's target.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("opening the lock %s: it is a symbolic link; remove it and run again", path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening the lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: process %s holds the lock %s; wait for it to finish", ErrLocked, strings.TrimSpace(string(holder)), path)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release gives the lock up. It is safe to call more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// journalExists reports whether dir holds a journal.
// archive moves the journal aside, to a name with the time its run
// started, and returns the new path. A later run starts a new journal
// without losing this one's record, such as the backup set it made.
func (j *Journal) archive() (string, error) {
	stamp := j.Started.UTC().Format("20060102T150405Z")
	base := strings.TrimSuffix(JournalFile, ".json") + "-" + stamp
	dest := filepath.Join(filepath.Dir(j.path), base+".json")
	for i := 2; ; i++ {
		if _, err := os.Lstat(dest); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dest = filepath.Join(filepath.Dir(j.path), fmt.Sprintf("%s-%d.json", base, i))
	}
	if err := os.Rename(j.path, dest); err != nil {
		return "", fmt.Errorf("moving the journal of the earlier run aside: %w", err)
	}
	return dest, nil
}

func journalExists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, JournalFile))
	return !errors.Is(err, fs.ErrNotExist)
}
