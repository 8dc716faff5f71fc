package store

import (
	"errors"
	"fmt"
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
	// Err is nil, ErrNotFound, a *CASError, an *EpochError,
	// ErrNodeRemoved, an ErrInvalidCommand, ErrAlreadyApplied or
	// ErrClosed. Only a nil Err means this call changed the state.
	Err error
}
