package pasupgrade

import "time"

// EventKind is the type of an Event.
type EventKind string

// Event kinds, in the order a run sends them.
const (
	// EventPlan carries the plan's steps before anything runs.
	EventPlan EventKind = "plan"
	// EventCheck carries one preflight check's result.
	EventCheck EventKind = "check"
	// EventPrompt is sent before the run calls RunConfig.Confirm.
	EventPrompt EventKind = "prompt"
	// EventStepStart and EventStepEnd bracket each step; EventStepEnd
	// carries the outcome and the duration.
	EventStepStart EventKind = "step_start"
	EventStepEnd   EventKind = "step_end"
	// EventStepSkipped reports a step a resumed run found done.
	EventStepSkipped EventKind = "step_skipped"
	// EventWould is one change a dry run would make.
	EventWould EventKind = "would"
	// EventInfo is a note from a step or the run.
	EventInfo EventKind = "info"
	// EventWarning is something the operator should look at.
	EventWarning EventKind = "warning"
	// EventSummary closes a successful run.
	EventSummary EventKind = "summary"
)

// Outcomes of a step in events and the journal.
const (
	OutcomeRunning = "running"
	OutcomeDone    = "done"
	OutcomeFailed  = "failed"
	OutcomeSkipped = "skipped"
)

// StepInfo describes a step without its functions, for events, the journal
// and the plan listing.
type StepInfo struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Section     string `json:"section"`
	User        string `json:"user"`
	Action      string `json:"action"`
	Changes     string `json:"changes,omitempty"`
	CoreStopped bool   `json:"core_stopped,omitempty"`
}

// Info returns the step's description.
func (s Step) Info() StepInfo {
	return StepInfo{
		ID: s.ID, Title: s.Title, Section: s.Section, User: s.User,
		Action: s.Action, Changes: s.Changes, CoreStopped: s.CoreStopped,
	}
}

// Infos returns the description of every step of the plan.
func (p *Plan) Infos() []StepInfo {
	infos := make([]StepInfo, len(p.Steps))
	for i, s := range p.Steps {
		infos[i] = s.Info()
	}
	return infos
}

// Event is one thing a run reports. Only the fields of its kind are set.
type Event struct {
	Kind EventKind `json:"kind"`
	Time time.Time `json:"time"`

	// Plan is set for EventPlan.
	Plan []StepInfo `json:"plan,omitempty"`
	// Check is set for EventCheck.
	Check *CheckResult `json:"check,omitempty"`
	// Step, Index (from 1) and Total are set for step events.
	Step  *StepInfo `json:"step,omitempty"`
	Index int       `json:"index,omitempty"`
	Total int       `json:"total,omitempty"`
	// Outcome, Duration and Error are set for EventStepEnd.
	Outcome  string        `json:"outcome,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	Error    string        `json:"error,omitempty"`
	// Message is set for EventInfo, EventWarning, EventWould and
	// EventPrompt.
	Message string `json:"message,omitempty"`
	// Summary is set for EventSummary.
	Summary *Summary `json:"summary,omitempty"`
}

// EventSink receives events. A run calls it from one goroutine at a time.
type EventSink func(Event)
