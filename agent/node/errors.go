package node

import (
	"errors"
	"fmt"
)

// Errors of the node, beside the store's (store.ErrNotFound, *store.CASError,
// ...). The HTTP layer maps each to one wire code in one place.
var (
	// ErrUnavailable: the request was not applied and may be retried:
	// no leader, shutting down, queue full.
	ErrUnavailable = errors.New("unavailable")
	// ErrUnknownOutcome: a write was handed to Raft but its fate is not
	// known (deadline passed, leadership lost while committing). It may or
	// may not have been applied; the client must re-read, not blindly retry.
	ErrUnknownOutcome = errors.New("timeout: outcome unknown")
	// ErrInvalid: the request is malformed (unknown node, bad address, ...).
	ErrInvalid = errors.New("invalid argument")
	// ErrNoSuchNode: a membership call named a node that is not a member.
	ErrNoSuchNode = errors.New("no such node in the group")
	// ErrLogStoreMismatch: the data directory holds a Raft log of the
	// other kind than --raft-log-store asks for.
	ErrLogStoreMismatch = errors.New("raft log store mismatch")
	// ErrLogDamaged: the Raft log on disk cannot be read back.
	ErrLogDamaged = errors.New("raft log damaged")
)

// NotLeaderError says this node cannot serve the request; LeaderID and
// LeaderHTTP name the leader when the node knows it.
type NotLeaderError struct {
	LeaderID, LeaderHTTP string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "not the leader, and no leader is known"
	}
	return fmt.Sprintf("not the leader; the leader is %s (%s)", e.LeaderID, e.LeaderHTTP)
}
