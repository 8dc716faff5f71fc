package kvclient

import (
	"errors"
	"fmt"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// Errors every failed call can be tested against with errors.Is. An
// agent's answer is an *Error that matches the value for its code; a
// failure without an answer (the network) matches ErrUnavailable or
// ErrTimeout as explained on each.
var (
	// ErrNotFound: no such key (or node, for management calls).
	ErrNotFound = errors.New("kvclient: not found")
	// ErrCASFailed: a compare-and-swap precondition did not hold; the error
	// is a *CASError carrying the key's current version.
	ErrCASFailed = errors.New("kvclient: compare-and-swap failed")
	// ErrInvalidArgument: the request is malformed (empty key, bad
	// parameter, unknown node, bad Config). Retrying cannot help.
	ErrInvalidArgument = errors.New("kvclient: invalid argument")
	// ErrTooLarge: a key, value or body is over a configured limit, on the
	// agent or Config.MaxResponseBytes.
	ErrTooLarge = errors.New("kvclient: too large")
	// ErrNotLeader: the agents answered not_leader until the call ran out
	// of attempts or time. Nothing was applied.
	ErrNotLeader = errors.New("kvclient: not leader")
	// ErrWrongGroup: the group does not own the key under its ring.
	// Nothing was applied.
	ErrWrongGroup = errors.New("kvclient: wrong group")
	// ErrStaleRing: the client's ring is newer than the group's. Nothing was
	// applied.
	ErrStaleRing = errors.New("kvclient: stale ring")
	// ErrKeyMoving: a ring change is handing the key to another group
	// (the error's wire.Error.Epoch is the change's target epoch).
	// Nothing was applied; calls retry it after a backoff, like
	// ErrStaleRing, until the hand-off ends or the deadline passes.
	ErrKeyMoving = errors.New("kvclient: key moving to another group")
	// ErrRingChangeInProgress: a ring change was asked for while another
	// one runs (the message names it). Nothing was started; wait for the
	// running change to finish (RingChangeStatus), then ask again.
	ErrRingChangeInProgress = errors.New("kvclient: ring change in progress")
	// ErrUnavailable: no agent could serve the call (no leader, shutting
	// down, unreachable) before attempts or time ran out. NOTHING WAS
	// APPLIED: a write failing with ErrUnavailable may be sent again.
	ErrUnavailable = errors.New("kvclient: unavailable")
	// ErrTimeout: a deadline passed or the connection broke after the
	// request was sent (the agent's `timeout` code, the per-attempt
	// timeout, the caller's context, a reset). FOR A WRITE THE OUTCOME IS
	// UNKNOWN: it may or may not have been applied, now or later. Re-read
	// before writing again; never treat it as "not applied".
	ErrTimeout = errors.New("kvclient: timeout, outcome unknown")
	// ErrInternal: the agent reported a bug, or answered outside the
	// protocol.
	ErrInternal = errors.New("kvclient: internal error")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("kvclient: client closed")
)

// codeErr is the one place where wire codes map to this package's errors.
// An unknown code (a newer agent) maps to nil: it still surfaces as an
// *Error with its Code.
func codeErr(c wire.Code) error {
	switch c {
	case wire.CodeInvalidArgument:
		return ErrInvalidArgument
	case wire.CodeTooLarge:
		return ErrTooLarge
	case wire.CodeNotFound:
		return ErrNotFound
	case wire.CodeCASFailed:
		return ErrCASFailed
	case wire.CodeNotLeader:
		return ErrNotLeader
	case wire.CodeWrongGroup:
		return ErrWrongGroup
	case wire.CodeStaleRing:
		return ErrStaleRing
	case wire.CodeKeyMoving:
		return ErrKeyMoving
	case wire.CodeRingChangeInProgress:
		return ErrRingChangeInProgress
	case wire.CodeUnavailable:
		return ErrUnavailable
	case wire.CodeTimeout:
		return ErrTimeout
	case wire.CodeInternal:
		return ErrInternal
	}
	return nil
}

// Error is an agent's answer to a failed request. errors.Is matches it
// against the Err* value of its Code, and errors.As finds the *wire.Error.
type Error struct {
	Op   string      // the call, e.g. `put "user/42"`
	Addr string      // the agent that answered
	Code wire.Code   // Wire.Code
	Wire *wire.Error // the answer as the agent sent it (leader hint, version, epoch); never nil
}

func newError(op, addr string, w *wire.Error) *Error {
	return &Error{Op: op, Addr: addr, Code: w.Code, Wire: w}
}

func (e *Error) Error() string {
	s := fmt.Sprintf("kvclient: %s: %s [agent %s]", e.Op, e.Wire.Error(), e.Addr)
	if e.Code == wire.CodeTimeout {
		s += " (for a write the outcome is unknown: it may or may not have been applied)"
	}
	return s
}

func (e *Error) Unwrap() []error {
	if s := codeErr(e.Code); s != nil {
		return []error{s, e.Wire}
	}
	return []error{e.Wire}
}

// Leader returns the leader hint of a not_leader answer, or nil.
func (e *Error) Leader() *wire.Leader { return e.Wire.Leader }

// CASError is a failed compare-and-swap or conditional delete: the key's
// version was not the one expected. It matches ErrCASFailed.
type CASError struct {
	Key      []byte
	Expected uint64 // the version the call required; 0: absent
	Current  uint64 // the key's version when the agent checked; 0: absent
	Err      *Error // the agent's answer
}

func (e *CASError) Error() string {
	return fmt.Sprintf("kvclient: compare-and-swap on %q failed: current version %s, expected %s",
		e.Key, versionString(e.Current), versionString(e.Expected))
}

func (e *CASError) Unwrap() error { return e.Err }

func versionString(v uint64) string {
	if v == 0 {
		return "0 (absent)"
	}
	return wire.FormatUint(v)
}

// asCASError turns a cas_failed answer into a *CASError; other errors pass.
func asCASError(err error, key []byte, expected uint64) error {
	var e *Error
	if errors.As(err, &e) && e.Code == wire.CodeCASFailed {
		return &CASError{Key: key, Expected: expected, Current: e.Wire.Version, Err: e}
	}
	return err
}

// transportError is an attempt that got no answer from the agent. kind says
// what that means for the call: ErrUnavailable when the request cannot have
// been applied (or was a read), ErrTimeout when a write may have been.
type transportError struct {
	op    string
	addr  string
	sent  bool  // the request was written in full to a connection
	kind  error // ErrUnavailable or ErrTimeout
	cause error
	// attemptTimedOut: the attempt's own deadline (RequestTimeout) passed
	// while the agent had the request, as opposed to the caller's.
	attemptTimedOut bool
}

func (e *transportError) Error() string {
	var what string
	switch {
	case !e.sent:
		what = "agent unreachable, request not sent"
	case e.kind == ErrTimeout:
		what = "request sent, no answer: outcome unknown"
	default:
		what = "request sent, no answer"
	}
	return fmt.Sprintf("kvclient: %s: %s [agent %s]: %v", e.op, what, e.addr, e.cause)
}

func (e *transportError) Unwrap() []error { return []error{e.kind, e.cause} }

// argError is a request refused before it was sent.
type argError struct{ msg string }

func invalidArgf(format string, args ...any) error {
	return &argError{msg: fmt.Sprintf(format, args...)}
}

func (e *argError) Error() string { return e.msg }
func (e *argError) Unwrap() error { return ErrInvalidArgument }
