package pasupgrade

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Users that steps run as.
const (
	UserRoot = "root"
	UserPAS  = PASUser
)

// Step is one numbered action of the guide.
type Step struct {
	// ID names the step in the journal, in events and in InsertBefore;
	// it is unique within a plan.
	ID string
	// Title is the step's action in the guide's words.
	Title string
	// Section is the guide section and item it implements, such as
	// "3.2.6".
	Section string
	// User is who the guide runs it as: UserRoot or UserPAS.
	User string
	// Action is the command, file edit or API call it runs, for the plan
	// listing.
	Action string
	// Changes describes the step's changes to the system. It is empty for
	// steps that only check.
	Changes string
	// CoreStopped marks steps during which the core component, and so the
	// proxy traffic, is down. Their total time is the reported downtime.
	CoreStopped bool
	// Slow marks steps that take long (backups, installs, pulls). A plan
	// with a slow step inside the core-stopped window is invalid.
	Slow bool
	// Always makes a resumed run repeat the step even when the journal
	// records it as done. It is for read-only steps that load state later
	// steps need.
	Always bool

	// Run does the work. It must be safe to run again after it was
	// interrupted midway.
	Run func(ctx context.Context, env *Env) error
	// Done reports whether the step's work is already in place. A resumed
	// run calls it for the last completed step, and runs that step again
	// when it returns false. Nil means the journal alone decides.
	Done func(ctx context.Context, env *Env) (bool, error)
}

// Kind is the purpose of a plan: upgrade or restore.
type Kind string

// Plan kinds.
const (
	KindUpgrade Kind = "upgrade"
	KindRestore Kind = "restore"
)

// Plan is an ordered list of steps for one topology, built by
// NewUpgradePlan or NewRestorePlan. Callers may insert their own steps with
// InsertBefore and InsertAfter before running it.
type Plan struct {
	Kind    Kind
	Path    UpgradePath
	Options Options
	Steps   []Step
}

// ErrUnknownStep is returned when a step id names no step of the plan.
var ErrUnknownStep = errors.New("pasupgrade: no such step")

// StepByID returns the step with the id.
func (p *Plan) StepByID(id string) (Step, bool) {
	i := p.index(id)
	if i < 0 {
		return Step{}, false
	}
	return p.Steps[i], true
}

// IDs returns the step ids in order.
func (p *Plan) IDs() []string {
	ids := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		ids[i] = s.ID
	}
	return ids
}

// InsertBefore inserts steps before the step with the id. It fails with
// ErrUnknownStep when there is no such step, and when the result is not a
// valid plan (see Validate), leaving the plan unchanged.
func (p *Plan) InsertBefore(id string, steps ...Step) error {
	return p.insert(id, 0, steps)
}

// InsertAfter inserts steps after the step with the id, as InsertBefore
// does.
func (p *Plan) InsertAfter(id string, steps ...Step) error {
	return p.insert(id, 1, steps)
}

func (p *Plan) insert(id string, offset int, steps []Step) error {
	i := p.index(id)
	if i < 0 {
		return fmt.Errorf("inserting steps at %q: %w; the plan's steps are %v", id, ErrUnknownStep, p.IDs())
	}
	updated := slices.Concat(p.Steps[:i+offset], steps, p.Steps[i+offset:])
	candidate := *p
	candidate.Steps = updated
	if err := candidate.Validate(); err != nil {
		return fmt.Errorf("inserting steps at %q: %w", id, err)
	}
	p.Steps = updated
	return nil
}

func (p *Plan) index(id string) int {
	return slices.IndexFunc(p.Steps, func(s Step) bool { return s.ID == id })
}

// Validate checks that every step has an id, a title, a valid user and a
// Run function, that ids are unique, and that no slow step runs while core
// is stopped.
func (p *Plan) Validate() error {
	seen := make(map[string]bool, len(p.Steps))
	for i, s := range p.Steps {
		switch {
		case s.ID == "":
			return fmt.Errorf("step %d (%q) has no id", i+1, s.Title)
		case seen[s.ID]:
			return fmt.Errorf("step id %q appears twice: give each step its own id", s.ID)
		case s.Title == "":
			return fmt.Errorf("step %q has no title", s.ID)
		case s.User != UserRoot && s.User != UserPAS:
			return fmt.Errorf("step %q runs as %q: use %q or %q", s.ID, s.User, UserRoot, UserPAS)
		case s.Run == nil:
			return fmt.Errorf("step %q has no Run function", s.ID)
		case s.Slow && s.CoreStopped:
			return fmt.Errorf("step %q is slow and would run while core is stopped: move it before the core stops", s.ID)
		}
		seen[s.ID] = true
	}
	return p.checkWindow()
}

// checkWindow rejects a slow step between the step that stops core and the
// one that starts it again, where core would stay down while it runs.
func (p *Plan) checkWindow() error {
	open := false
	for _, s := range p.Steps {
		switch {
		case s.ID == stepStopCore && s.CoreStopped:
			open = true
		case s.ID == stepStartCore:
			open = false
		case open && s.Slow:
			return fmt.Errorf("step %q is slow and would run while core is stopped: move it before %q", s.ID, stepStopCore)
		}
	}
	return nil
}
