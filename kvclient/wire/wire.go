// Package wire is the carpkv HTTP protocol shared by the agent (server side)
// and kvclient (client side): error codes, their HTTP statuses, header and
// query names, and the JSON bodies. It depends on the standard library only,
// so importing it costs a client nothing. docs/api.md is its prose form.
package wire

import (
	"fmt"
	"net/http"
	"strconv"
)

// Code is a stable, machine-readable error code. Every failed request of
// every endpoint carries exactly one.
type Code string

const (
	CodeInvalidArgument Code = "invalid_argument" // malformed request; retrying cannot help
	CodeTooLarge        Code = "too_large"        // key, value or body over a configured limit
	CodeNotFound        Code = "not_found"        // no such key (or node, for management calls)
	CodeCASFailed       Code = "cas_failed"       // precondition did not hold; Error.Version is the current version (0: absent)
	CodeNotLeader       Code = "not_leader"       // this agent cannot serve it; Error.Leader names the leader if known
	CodeUnavailable     Code = "unavailable"      // no leader, shutting down, storage failure: nothing was applied
	CodeTimeout         Code = "timeout"          // deadline passed; the outcome of a write is UNKNOWN
	CodeWrongGroup      Code = "wrong_group"      // key not owned by this group under its ring; Error.Epoch is the group's epoch
	CodeStaleRing       Code = "stale_ring"       // the client's ring epoch is newer than the group's
	// CodeKeyMoving: the key is being handed to another group by a ring
	// change (Error.Epoch is the change's target epoch); nothing was
	// applied, retry after a short wait.
	CodeKeyMoving Code = "key_moving"
	// CodeRingChangeInProgress: a ring change was asked for while another
	// one runs; the message names it.
	CodeRingChangeInProgress Code = "ring_change_in_progress"
	CodeInternal             Code = "internal" // a bug; the message says more
)

// HTTPStatus is the one place where codes map to HTTP statuses.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeInvalidArgument:
		return http.StatusBadRequest
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeNotFound:
		return http.StatusNotFound
	case CodeCASFailed, CodeRingChangeInProgress:
		return http.StatusConflict
	case CodeNotLeader, CodeWrongGroup, CodeStaleRing:
		return http.StatusMisdirectedRequest
	case CodeUnavailable, CodeKeyMoving:
		return http.StatusServiceUnavailable
	case CodeTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// Retryable reports whether the same request may be sent again, to the same
// or another agent, without risk of applying a write twice: the server
// guarantees nothing was applied.
func (c Code) Retryable() bool {
	switch c {
	case CodeNotLeader, CodeUnavailable, CodeWrongGroup, CodeStaleRing, CodeKeyMoving:
		return true
	}
	return false
}

// Leader names a group's leader as far as the answering agent knows.
type Leader struct {
	ID   string `json:"id"`
	HTTP string `json:"http,omitempty"` // host:port of the leader's HTTP API
}

// Error is the body of every failed response: {"error": {...}}.
type Error struct {
	Code    Code    `json:"code"`
	Message string  `json:"message"`
	Leader  *Leader `json:"leader,omitempty"`  // with not_leader, when known
	Version uint64  `json:"version,omitempty"` // with cas_failed: the current version, 0 if absent
	Epoch   uint64  `json:"epoch,omitempty"`   // with wrong_group, stale_ring and key_moving
}

func (e *Error) Error() string {
	s := string(e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Leader != nil && e.Leader.ID != "" {
		s += fmt.Sprintf(" (leader %s at %s)", e.Leader.ID, e.Leader.HTTP)
	}
	return s
}

// ErrorBody wraps Error on the wire.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Paths, headers and query parameters of the KV API. A key travels in the
// path, percent-encoded (url.PathEscape), so any byte string is a key.
const (
	KVPrefix = "/v1/kv/"

	// HeaderVersion carries the key's version on GET and on successful
	// PUT/DELETE responses.
	HeaderVersion = "X-Carpkv-Version"
	// HeaderIndex carries the Raft index at which a write was applied or
	// a read was served.
	HeaderIndex = "X-Carpkv-Index"
	// HeaderRingEpoch carries the client's ring epoch on requests (optional)
	// and the group's applied epoch on responses.
	HeaderRingEpoch = "X-Carpkv-Ring-Epoch"

	// QueryStale=true asks for a local read on any member (may be stale).
	QueryStale = "stale"
	// QueryCAS=<version> makes PUT or DELETE conditional: it applies only
	// if the key's current version equals it; 0 means "the key is absent"
	// (put-if-absent).
	QueryCAS = "cas"
	// QueryTimeout=<Go duration> lowers the server-side deadline of one
	// request (never raises it above the agent's --request-timeout).
	// kvclient sends a little less than its per-attempt timeout, so the
	// agent answers `timeout` before the client gives up on the exchange.
	QueryTimeout = "timeout"
)

// WriteResult is the JSON body of a successful PUT or DELETE.
type WriteResult struct {
	Version uint64 `json:"version"` // new version (PUT) or the deleted one (DELETE)
	Index   uint64 `json:"index"`   // Raft index of the write
}

// FormatUint and ParseUint keep header encodings in one place.
func FormatUint(v uint64) string { return strconv.FormatUint(v, 10) }

// ParseUint parses a decimal version, index or epoch.
func ParseUint(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }

// Management API paths.
const (
	PathAgentSelf          = "/v1/agent/self"
	PathRaftConfiguration  = "/v1/raft/configuration"
	PathRaftJoin           = "/v1/raft/join"
	PathRaftRemove         = "/v1/raft/remove"
	PathTransferLeadership = "/v1/raft/transfer-leadership"
	PathHealth             = "/v1/health"
	PathReady              = "/v1/ready"
	PathMetrics            = "/metrics"
)

// AgentInfo is the body of GET /v1/agent/self.
type AgentInfo struct {
	ID           string  `json:"id"`
	Group        string  `json:"group"`
	RaftAddr     string  `json:"raft_addr"`
	HTTPAddr     string  `json:"http_addr"`
	State        string  `json:"state"` // Leader, Follower, Candidate, Shutdown
	Leader       *Leader `json:"leader,omitempty"`
	Term         uint64  `json:"term"`
	LastIndex    uint64  `json:"last_index"`
	CommitIndex  uint64  `json:"commit_index"`
	AppliedIndex uint64  `json:"applied_index"`
	Keys         int     `json:"keys"`
	StorageBytes int64   `json:"storage_bytes"`
	RingEpoch    uint64  `json:"ring_epoch"` // the ring epoch the group has applied here
	Version      string  `json:"version"`
}

// Server is one member of a group's Raft configuration.
type Server struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr,omitempty"` // from the replicated node registry
	Suffrage string `json:"suffrage"`            // Voter, Nonvoter, Staging
	Leader   bool   `json:"leader"`
}

// Configuration is the body of GET /v1/raft/configuration.
type Configuration struct {
	Index   uint64   `json:"index"`
	Servers []Server `json:"servers"`
}

// JoinRequest is the body of POST /v1/raft/join.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Nonvoter bool   `json:"nonvoter,omitempty"`
}

// NodeRequest is the body of POST /v1/raft/remove and
// /v1/raft/transfer-leadership (ID may be empty for a transfer: any follower).
type NodeRequest struct {
	ID string `json:"id"`
}

// IndexResult is the body of a successful membership change.
type IndexResult struct {
	Index uint64 `json:"index"`
}

// Ring API paths.
const (
	// PathRing: GET the committed ring with each group's members and
	// leader as gossip knows them; POST a RingSpec to a group's leader to
	// commit it in that group (used by the ring coordinator).
	PathRing = "/v1/ring"
	// PathGossipMembers: GET every agent gossip has seen, alive or not.
	PathGossipMembers = "/v1/gossip/members"
)

// RingGroupSpec is one group of a ring and its weight.
type RingGroupSpec struct {
	ID     string  `json:"id"`
	Weight float64 `json:"weight"`
}

// RingSpec is what a group commits: the ring epoch from which it acts, the
// CARP mode ("strong" or "spec") and the groups.
type RingSpec struct {
	Epoch  uint64          `json:"epoch"`
	Mode   string          `json:"mode"`
	Groups []RingGroupSpec `json:"groups"`
}

// Member is one agent as the gossip pool knows it (advisory).
type Member struct {
	ID        string `json:"id"`
	Group     string `json:"group"`
	HTTPAddr  string `json:"http_addr"`
	RaftAddr  string `json:"raft_addr"`
	State     string `json:"state"`            // alive, suspect, dead, left
	Leader    bool   `json:"leader,omitempty"` // it says it leads its group
	RingEpoch uint64 `json:"ring_epoch"`       // the ring epoch it has applied
}

// RingGroup is one group of GET /v1/ring: its committed weight and target
// share, and what gossip knows of its members and leader.
type RingGroup struct {
	ID      string   `json:"id"`
	Weight  float64  `json:"weight"`
	Share   float64  `json:"share"` // the CARP target fraction of keys
	Leader  *Leader  `json:"leader,omitempty"`
	Members []Member `json:"members"`
}

// Ring is the body of GET /v1/ring. Epoch 0 means no ring was committed:
// the answering agent's group is standalone and serves every key (Groups
// then lists that one group).
type Ring struct {
	Epoch  uint64      `json:"epoch"`
	Mode   string      `json:"mode"`
	Groups []RingGroup `json:"groups"`
	// From is the group of the agent that answered.
	From string `json:"from"`
}

// Members is the body of GET /v1/gossip/members.
type Members struct {
	Members []Member `json:"members"`
}
