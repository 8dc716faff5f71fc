package wire

// Ring changes (resharding, docs/design.md "Ring changes"): an operator asks
// the coordinator (the leader of the smallest group of the committed ring)
// to move the cluster from ring epoch E to E+1; the coordinator records the
// change in its group's Raft log and drives it to the end, moving keys
// between groups with the export and import calls below.

// Ring change API paths.
const (
	// PathRingChange: POST a RingChangeRequest to the coordinator's
	// leader to start a change; GET (any agent of the coordinator's
	// group, the leader knows the live progress) the change in progress
	// or the last one completed, as RingChangeStatus.
	PathRingChange = "/v1/ring/change"
	// PathMoveState: GET one group's part in a change, as its leader has
	// applied it (MoveState). The coordinator polls it.
	PathMoveState = "/v1/move/state"
	// PathMoveStep: POST a MoveStepRequest to a group's leader: commit
	// one step of the change in that group (prepare, freeze, activate,
	// cleanup, finish).
	PathMoveStep = "/v1/move/step"
	// PathMoveExport: POST a MoveExportRequest to a source group's
	// leader: send one chunk of its moving keys to their new owners.
	PathMoveExport = "/v1/move/export"
	// PathMoveImport: POST an encoded import command (binary, built by
	// the exporting agent) to a destination group's leader.
	PathMoveImport = "/v1/move/import"
)

// Kinds of ring change.
const (
	ChangeAddGroup    = "add-group"
	ChangeRemoveGroup = "remove-group"
	ChangeSetWeight   = "set-weight"
)

// RingChangeRequest is the body of POST /v1/ring/change. Weight is used by
// add-group (0: the weight the group's leader was started with, else 1)
// and set-weight.
type RingChangeRequest struct {
	Kind   string  `json:"kind"`
	Group  string  `json:"group"`
	Weight float64 `json:"weight,omitempty"`
}

// Phases of a ring change, in order.
const (
	PhasePrepare  = "prepare"  // every group involved records the next ring
	PhaseCopy     = "copy"     // sources copy moving keys while serving them
	PhaseFreeze   = "freeze"   // sources stop serving their moving keys
	PhaseFinal    = "final"    // sources send what changed since the last copy, and seal
	PhaseActivate = "activate" // every group adopts the next ring
	PhaseCleanup  = "cleanup"  // sources drop what they handed off
	PhaseFinish   = "finish"   // every group forgets the change
	PhaseDone     = "done"     // complete
)

var phases = []string{PhasePrepare, PhaseCopy, PhaseFreeze, PhaseFinal, PhaseActivate, PhaseCleanup, PhaseFinish, PhaseDone}

// PhaseOrder is the position of phase p in a change (-1: not a phase).
func PhaseOrder(p string) int {
	for i, q := range phases {
		if q == p {
			return i
		}
	}
	return -1
}

// PairProgress counts what one source has handed to one destination.
type PairProgress struct {
	Source string `json:"source"`
	Dest   string `json:"dest"`
	Keys   uint64 `json:"keys"`  // records sent (values and deletes), over every round
	Bytes  uint64 `json:"bytes"` // key and value bytes sent
}

// SourceProgress is one source group's progress.
type SourceProgress struct {
	Group string `json:"group"`
	// Watermark: every write of this source with a version up to it has
	// been copied to its destination.
	Watermark uint64 `json:"watermark"`
	Rounds    int    `json:"rounds"`           // copy rounds completed
	LastRound uint64 `json:"last_round"`       // records sent by the last copy round
	Estimate  uint64 `json:"estimate"`         // keys expected to move out of it (from its key count and the shares)
	Frozen    bool   `json:"frozen"`           // it refuses its moving keys
	Sealed    bool   `json:"sealed"`           // its final round reached every destination
	Cleaned   bool   `json:"cleaned"`          // it dropped what it handed off
	Dropped   uint64 `json:"dropped"`          // keys it dropped in cleanup
	Cursor    string `json:"cursor,omitempty"` // cleanup position (internal)
}

// RingChangeStatus describes a ring change: the one in progress, or the
// last one completed. Times are Unix milliseconds on the coordinator's
// clock.
type RingChangeStatus struct {
	Kind       string           `json:"kind"`
	Group      string           `json:"group"`
	From       RingSpec         `json:"from"`
	To         RingSpec         `json:"to"`
	Phase      string           `json:"phase"`
	StartedAt  int64            `json:"started_at"`
	PhaseAt    int64            `json:"phase_at"`              // when the current phase began
	FinishedAt int64            `json:"finished_at,omitempty"` // set when done
	Sources    []SourceProgress `json:"sources"`
	Pairs      []PairProgress   `json:"pairs"`
	// Coordinator is the group recording the change.
	Coordinator string `json:"coordinator"`
	// LastError is the last failure the coordinator met (it retries);
	// empty when the last step went well. Live: only the coordinator's
	// leader knows it.
	LastError string `json:"last_error,omitempty"`
	// Live is true when the answer comes from the leader driving it.
	Live bool `json:"live,omitempty"`
}

// RingChangeAnswer is the body of GET /v1/ring/change: the change in
// progress (Active) and/or the last one completed (Last).
type RingChangeAnswer struct {
	Active *RingChangeStatus `json:"active,omitempty"`
	Last   *RingChangeStatus `json:"last,omitempty"`
}

// MoveState is one group's part in a ring change, as its leader applied it.
type MoveState struct {
	Group       string   `json:"group"`
	RingEpoch   uint64   `json:"ring_epoch"`            // the applied ring's epoch
	Target      uint64   `json:"target,omitempty"`      // the epoch of the change it prepared (0: none)
	Frozen      bool     `json:"frozen,omitempty"`      // refuses its outgoing keys
	Sealed      []string `json:"sealed,omitempty"`      // sources whose final round it imported
	Coordinator string   `json:"coordinator,omitempty"` // the group driving the change it is in
	Keys        int      `json:"keys"`                  // keys stored
	Clock       uint64   `json:"clock"`                 // the version clock
	Leader      *Leader  `json:"leader,omitempty"`      // the answering agent, a leader
}

// Steps a group commits at the coordinator's request.
const (
	StepPrepare  = "prepare"
	StepFreeze   = "freeze"
	StepActivate = "activate"
	StepCleanup  = "cleanup"
	StepFinish   = "finish"
	// StepHandover records a completed change (Record) as the last change
	// of a group that coordinates the ring from now on, when the change
	// removed its coordinator.
	StepHandover = "handover"
)

// MoveStepRequest is the body of POST /v1/move/step. From and To are the
// rings of the change (every step names its target epoch, To.Epoch).
// Cursor and Limit are for cleanup: where to resume and how many keys to
// drop at most in one entry.
type MoveStepRequest struct {
	Step   string   `json:"step"`
	From   RingSpec `json:"from"`
	To     RingSpec `json:"to"`
	Cursor string   `json:"cursor,omitempty"` // base64 of the key to resume after
	Limit  int      `json:"limit,omitempty"`
	// Coordinator names the group driving the change (prepare).
	Coordinator string `json:"coordinator,omitempty"`
	// Record is the completed change (handover).
	Record *RingChangeStatus `json:"record,omitempty"`
}

// MoveStepResult answers a step: the group's state afterwards, and for
// cleanup the keys dropped and where to go on (Cursor empty: done).
type MoveStepResult struct {
	State   MoveState `json:"state"`
	Dropped uint64    `json:"dropped,omitempty"`
	Cursor  string    `json:"cursor,omitempty"`
	Done    bool      `json:"done,omitempty"`
}

// MoveExportRequest is the body of POST /v1/move/export. The source sends
// its keys that move under To with a version above Since (and the deletes
// of such keys recorded since the change was prepared) to their new
// owners, resuming after Cursor, for at most about Budget milliseconds;
// Final (after the freeze) also seals every destination once the round is
// complete. Dests lists HTTP addresses of each destination group's
// members, leader first when known.
type MoveExportRequest struct {
	From   RingSpec            `json:"from"`
	To     RingSpec            `json:"to"`
	Since  uint64              `json:"since"`
	Cursor string              `json:"cursor,omitempty"`
	Final  bool                `json:"final,omitempty"`
	Budget int                 `json:"budget_ms,omitempty"`
	Dests  map[string][]string `json:"dests"`
}

// MoveExportResult answers an export chunk. Watermark is the source's
// version clock when the round's first chunk began (the next round's
// Since); Cursor is where the next chunk of this round resumes (empty: the
// round is complete).
type MoveExportResult struct {
	Watermark uint64         `json:"watermark"`
	Cursor    string         `json:"cursor,omitempty"`
	Pairs     []PairProgress `json:"pairs"`
	Sealed    bool           `json:"sealed,omitempty"`
}
