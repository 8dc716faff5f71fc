package chaos

import (
	"fmt"
	"hash/fnv"

	"github.com/anishathalye/porcupine"
)

// The sequential specification one key is checked against: a register
// with versions, as the agent's state machine implements it
// (agent/store/apply.go). It is pure: no I/O, no clocks.
//
// Versions come from the group's version clock, shared by all keys of the
// group, so the model cannot predict them: it only knows that each write
// of a key gets a version above every version the key had before (also
// across delete and re-create), and learns the actual number from the
// answers. A write whose outcome is unknown leaves the version unknown
// until an answer (a read, a failed CAS) reveals it.

// registerState is the state of one key.
type registerState struct {
	Exists bool
	Value  string
	// Version is the key's version when it exists and is known; 0 when
	// the key exists at a version no answer has revealed yet (the write
	// that made it had an unknown outcome).
	Version uint64
	// Floor is at least every version the key has had; the next write of
	// the key gets a version above it. Floor >= Version.
	Floor uint64
}

// registerInput is an operation as invoked.
type registerInput struct {
	Kind   OpKind
	Value  string // put, put-if-absent, cas: the value written
	Expect uint64 // cas, compare-and-delete: the expected version (0: absent)
}

// registerOutput is an operation's answer. Outcome is never OutcomeFailed
// here: operations that certainly had no effect are left out of the
// checked history.
type registerOutput struct {
	Outcome Outcome
	Value   string // get: the value read
	Version uint64 // ok: the version read, written or deleted; cas_failed: the current version
}

func (s registerState) String() string {
	switch {
	case !s.Exists:
		return fmt.Sprintf("absent (versions <= %d)", s.Floor)
	case s.Version == 0:
		return fmt.Sprintf("%q@? (> %d)", s.Value, s.Floor)
	default:
		return fmt.Sprintf("%q@%d", s.Value, s.Version)
	}
}

// pinned returns s with its unknown version now known to be v.
func (s registerState) pinned(v uint64) registerState {
	s.Version, s.Floor = v, max(s.Floor, v)
	return s
}

// versionIs reports whether an existing key's version may be v: equal to
// the known version, or any version above the floor while unknown.
func (s registerState) versionIs(v uint64) bool {
	if !s.Exists || v == 0 {
		return false
	}
	if s.Version != 0 {
		return s.Version == v
	}
	return v > s.Floor
}

// matches says whether a precondition "the key is at version expect"
// (0: absent) may hold, and whether it may fail, in state s. Both can be
// true while the version is unknown.
func (s registerState) matches(expect uint64) (canHold, canFail bool) {
	if expect == 0 {
		return !s.Exists, s.Exists
	}
	if !s.Exists {
		return false, true
	}
	if s.Version != 0 {
		return s.Version == expect, s.Version != expect
	}
	return expect > s.Floor, true
}

// casFailed is the state after a refused precondition that reported
// current, or false if s cannot report that.
func (s registerState) casFailed(expect, current uint64) (registerState, bool) {
	if current == expect {
		return s, false // the agent compares; equal versions cannot fail
	}
	if !s.Exists {
		return s, current == 0
	}
	if !s.versionIs(current) {
		return s, false
	}
	return s.pinned(current), true
}

// stepRegister returns every state the key may be in after in answered
// out in state s; none if that answer is impossible.
func stepRegister(s registerState, in registerInput, out registerOutput) []registerState {
	one := func(n registerState) []registerState { return []registerState{n} }
	switch in.Kind {
	case OpGet:
		switch out.Outcome {
		case OutcomeOK:
			if s.Exists && s.Value == out.Value && s.versionIs(out.Version) {
				return one(s.pinned(out.Version))
			}
		case OutcomeNotFound:
			if !s.Exists {
				return one(s)
			}
		}
		return nil

	case OpPut:
		switch out.Outcome {
		case OutcomeOK:
			if out.Version > s.Floor {
				return one(registerState{Exists: true, Value: in.Value, Version: out.Version, Floor: out.Version})
			}
		case OutcomeUnknown:
			return one(registerState{Exists: true, Value: in.Value, Floor: s.Floor})
		}
		return nil

	case OpPutIfAbsent, OpCAS:
		expect := in.Expect
		if in.Kind == OpPutIfAbsent {
			expect = 0
		}
		canHold, canFail := s.matches(expect)
		written := func(v uint64) registerState {
			return registerState{Exists: true, Value: in.Value, Version: v, Floor: max(s.Floor, expect, v)}
		}
		switch out.Outcome {
		case OutcomeOK:
			if canHold && out.Version > max(s.Floor, expect) {
				return one(written(out.Version))
			}
		case OutcomeCASFailed:
			if canFail {
				if n, ok := s.casFailed(expect, out.Version); ok {
					return one(n)
				}
			}
		case OutcomeUnknown:
			var next []registerState
			if canHold {
				next = append(next, written(0))
			}
			if canFail {
				next = append(next, s)
			}
			return next
		}
		return nil

	case OpDelete:
		gone := registerState{Floor: s.Floor}
		switch out.Outcome {
		case OutcomeOK:
			if s.versionIs(out.Version) {
				gone.Floor = max(s.Floor, out.Version)
				return one(gone)
			}
		case OutcomeNotFound:
			if !s.Exists {
				return one(s)
			}
		case OutcomeUnknown:
			if s.Exists {
				return one(gone)
			}
			return one(s)
		}
		return nil

	case OpCompareAndDelete:
		canHold, canFail := s.matches(in.Expect)
		gone := registerState{Floor: max(s.Floor, in.Expect)}
		switch out.Outcome {
		case OutcomeOK:
			if canHold && out.Version == in.Expect {
				return one(gone)
			}
		case OutcomeNotFound:
			if !s.Exists {
				return one(s)
			}
		case OutcomeCASFailed:
			if s.Exists && canFail {
				if n, ok := s.casFailed(in.Expect, out.Version); ok {
					return one(n)
				}
			}
		case OutcomeUnknown:
			if !s.Exists {
				return one(s)
			}
			var next []registerState
			if canHold {
				next = append(next, gone)
			}
			if canFail {
				next = append(next, s)
			}
			return next
		}
		return nil
	}
	return nil
}

// registerModel is the porcupine model of one key. It is nondeterministic
// only where an unknown outcome meets an unknown version; porcupine turns
// it into a deterministic model over sets of states.
var registerModel = (&porcupine.NondeterministicModel{
	Init: func() []any { return []any{registerState{}} },
	Step: func(state, input, output any) []any {
		next := stepRegister(state.(registerState), input.(registerInput), output.(registerOutput))
		out := make([]any, len(next))
		for i, n := range next {
			out[i] = n
		}
		return out
	},
	Equal: func(a, b any) bool { return a.(registerState) == b.(registerState) },
	Hash: func(state any) uint64 {
		s := state.(registerState)
		h := fnv.New64a()
		fmt.Fprintf(h, "%t\x00%s\x00%d\x00%d", s.Exists, s.Value, s.Version, s.Floor)
		return h.Sum64()
	},
	DescribeOperation: func(input, output any) string {
		return describeOp(input.(registerInput), output.(registerOutput))
	},
	DescribeState: func(state any) string { return state.(registerState).String() },
}).ToModel()

func describeOp(in registerInput, out registerOutput) string {
	var call string
	switch in.Kind {
	case OpGet:
		call = "get()"
	case OpPut:
		call = fmt.Sprintf("put(%q)", in.Value)
	case OpPutIfAbsent:
		call = fmt.Sprintf("put-if-absent(%q)", in.Value)
	case OpCAS:
		call = fmt.Sprintf("cas(@%d, %q)", in.Expect, in.Value)
	case OpDelete:
		call = "delete()"
	case OpCompareAndDelete:
		call = fmt.Sprintf("compare-and-delete(@%d)", in.Expect)
	}
	switch out.Outcome {
	case OutcomeOK:
		if in.Kind == OpGet {
			return fmt.Sprintf("%s -> %q@%d", call, out.Value, out.Version)
		}
		return fmt.Sprintf("%s -> ok @%d", call, out.Version)
	case OutcomeCASFailed:
		return fmt.Sprintf("%s -> cas_failed (current @%d)", call, out.Version)
	default:
		return fmt.Sprintf("%s -> %s", call, out.Outcome)
	}
}
