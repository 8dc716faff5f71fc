package store

import (
	"errors"
	"fmt"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// Errors carried by Result.Err or returned by the read methods. They are
// values to test with errors.Is; the agent maps them to wire codes.
var (
	// ErrNotFound: no such key (Get, Delete).
	ErrNotFound = errors.New("store: not found")
	// ErrCASFailed: a Put or Delete precondition did not hold. The
	// concrete error is a *CASError carrying the current version.
	ErrCASFailed = errors.New("store: cas failed")
	// ErrStaleEpoch: OpSetRing carried an epoch not higher than the
	// stored one. The concrete error is an *EpochError.
	ErrStaleEpoch = errors.New("store: epoch not higher than the current one")
	// ErrWrongGroup: the key is not owned by this group under its applied
	// ring. The concrete error is a *RingError with the group's epoch.
	ErrWrongGroup = errors.New("store: key not owned by this group")
	// ErrStaleRing: the request was routed by a ring epoch newer than the
	// group's. The concrete error is a *RingError with the group's epoch.
	ErrStaleRing = errors.New("store: request ring epoch is newer than the group's")
	// ErrNodeRemoved: OpRegisterNode for an ID that was removed from the
	// group. A removed node must come back with a new ID.
	ErrNodeRemoved = errors.New("store: node was removed from the group")
	// ErrInvalidCommand: the log entry does not decode or does not
	// validate. It is deterministic (same bytes on every replica), so the
	// entry is consumed without a state change.
	ErrInvalidCommand = errors.New("store: invalid command")
	// ErrAlreadyApplied: the entry's index is at or below the durable
	// applied index, so its effect is already in the state (it is being
	// replayed after a restart). Its original outcome is not known here.
	ErrAlreadyApplied = errors.New("store: entry already applied")
	// ErrKeyMoving: a ring change is handing the key to another group;
	// nothing was applied. The concrete error is a *RingError carrying the
	// change's target epoch and the key's next owner.
	ErrKeyMoving = errors.New("store: key is moving to another group")
	// ErrMoveNotReady: a ring change step came before what it needs (the
	// group has not prepared the change, is not frozen, lacks a source's
	// final round, ...). Nothing changed; the coordinator retries.
	ErrMoveNotReady = errors.New("store: ring change step not ready")
	// ErrMoveDone: an import for a change this group has adopted already;
	// nothing changed (the change no longer needs it).
	ErrMoveDone = errors.New("store: ring change already adopted")
	// ErrChangeInProgress: another ring change is in progress. With
	// OpChangeLog the concrete error is a *ChangeError naming it.
	ErrChangeInProgress = errors.New("store: a ring change is in progress")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
)

// CASError is the error of a failed precondition. Current is the key's
// version when the command was applied, 0 if the key was absent.
type CASError struct {
	Current uint64
}

func (e *CASError) Error() string {
	return fmt.Sprintf("store: cas failed: current version %d", e.Current)
}

// Unwrap makes errors.Is(err, ErrCASFailed) hold.
func (e *CASError) Unwrap() error { return ErrCASFailed }

// RingError is the error of a request the group refuses under its ring:
// Err is ErrWrongGroup or ErrStaleRing; Epoch is the group's ring epoch and
// Owner, for ErrWrongGroup, the owner group under that ring.
type RingError struct {
	Err   error
	Epoch uint64
	Owner string
}

func (e *RingError) Error() string {
	if e.Owner != "" {
		return fmt.Sprintf("%v: owner under ring epoch %d is group %s", e.Err, e.Epoch, e.Owner)
	}
	return fmt.Sprintf("%v (group's ring epoch %d)", e.Err, e.Epoch)
}

// Unwrap makes errors.Is(err, ErrWrongGroup/ErrStaleRing) hold.
func (e *RingError) Unwrap() error { return e.Err }

// ChangeError refuses a ring change while Active runs.
type ChangeError struct {
	Active wire.RingChangeStatus
}

func (e *ChangeError) Error() string {
	return fmt.Sprintf("store: ring change in progress: %s %s, epoch %d to %d, phase %s",
		e.Active.Kind, e.Active.Group, e.Active.From.Epoch, e.Active.To.Epoch, e.Active.Phase)
}

// Unwrap makes errors.Is(err, ErrChangeInProgress) hold.
func (e *ChangeError) Unwrap() error { return ErrChangeInProgress }

// EpochError is the error of a rejected OpSetRing. Current is the stored
// ring epoch.
type EpochError struct {
	Current uint64
}

func (e *EpochError) Error() string {
	return fmt.Sprintf("store: epoch not higher than the current epoch %d", e.Current)
}

// Unwrap makes errors.Is(err, ErrStaleEpoch) hold.
func (e *EpochError) Unwrap() error { return ErrStaleEpoch }

// Result is what ApplyBatch returns for every entry; raft hands it to the
// ApplyFuture of the node that proposed the entry.
type Result struct {
	// Index is the entry's Raft log index.
	Index uint64
	// Version is the key's new version after a Put, the deleted version
	// after a Delete, 0 otherwise.
	Version uint64
	// Count is what a move command changed: records imported, keys
	// dropped by a cleanup.
	Count uint64
	// Next is where a cleanup resumes (after this key); nil: done.
	Next []byte
	// Keys holds an OpPutBatch's result per pair, in the order of the
	// pairs; Err is then nil unless the whole entry was refused.
	Keys []KeyResult
	// Err is nil, ErrNotFound, a *CASError, an *EpochError,
	// ErrNodeRemoved, an ErrInvalidCommand, ErrAlreadyApplied or
	// ErrClosed. Only a nil Err means this call changed the state.
	Err error
}

// KeyResult is the outcome of one pair of an OpPutBatch: the key's new
// version, or why it was not written (a *RingError).
type KeyResult struct {
	Version uint64
	Err     error
}
