package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/memberlist"
)

// MaxMetaBytes is the largest JSON encoding of a Meta accepted: memberlist's
// MetaMaxSize less room for the leave intent this package adds on the wire.
// Start and UpdateMeta refuse anything bigger with ErrMetaTooLarge rather
// than let memberlist panic.
const MaxMetaBytes = memberlist.MetaMaxSize - 16

// ErrMetaTooLarge is returned (wrapped) when the JSON encoding of a Meta
// exceeds MaxMetaBytes.
var ErrMetaTooLarge = errors.New("gossip: metadata too large")

// Meta is what one agent tells every other agent about itself. It is
// advisory (DESIGN.md, "Who knows what"): a reader may act on it as a hint,
// never as the truth, and a stale or wrong value must only cost a retry.
//
// It travels JSON-encoded, so agents of different versions interoperate:
// unknown fields are ignored and missing ones decode as zero values.
type Meta struct {
	NodeID   string  `json:"id"`
	Group    string  `json:"g"`
	RaftAddr string  `json:"r"`
	HTTPAddr string  `json:"h"`
	Weight   float64 `json:"w"` // the group weight this agent was configured with
	// Leader is the node ID this agent believes leads its group ("" unknown).
	Leader string `json:"l,omitempty"`
	// RingEpoch is the ring epoch this agent has applied.
	RingEpoch uint64 `json:"e"`
	// HasState: the agent has Raft state (bootstrapped or joined); used by
	// bootstrap-expect to tell fresh agents from members of a formed group.
	HasState bool `json:"s"`
}

// name is the memberlist node name: unique across the whole pool because
// node IDs are only unique inside a group.
func (m Meta) name() string { return m.Group + "/" + m.NodeID }

// validateIdentity checks the fields that make up the node name. A '/' in
// either would make two different (group, id) pairs share a name.
func (m Meta) validateIdentity() error {
	if m.NodeID == "" || strings.Contains(m.NodeID, "/") {
		return fmt.Errorf("gossip: invalid Meta.NodeID %q: must be non-empty without '/'", m.NodeID)
	}
	if m.Group == "" || strings.Contains(m.Group, "/") {
		return fmt.Errorf("gossip: invalid Meta.Group %q: must be non-empty without '/'", m.Group)
	}
	return nil
}

// wireMeta is what travels: the Meta's fields and, from an agent that is
// leaving on purpose, the intent. memberlist v0.7.0 does not tell its event
// delegate whether a node left or failed (Node.State is never set there:
// hashicorp/memberlist#293), so a leaving agent first gossips the intent in
// its metadata, then leaves; see Gossip.Leave.
type wireMeta struct {
	Meta
	Leaving bool `json:"lv,omitempty"`
}

// encodeMeta returns the wire form of m, or ErrMetaTooLarge.
func encodeMeta(m Meta, leaving bool) ([]byte, error) {
	b, err := json.Marshal(wireMeta{m, leaving})
	if err != nil { // only a NaN or infinite Weight can get here
		return nil, fmt.Errorf("gossip: encode metadata: %w", err)
	}
	// Without the intent, b is exactly m's encoding; with it, at most 10
	// bytes more, which MaxMetaBytes leaves room for.
	if (!leaving && len(b) > MaxMetaBytes) || len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes encoded, limit %d", ErrMetaTooLarge, len(b), MaxMetaBytes)
	}
	return b, nil
}

// decodeMeta parses a peer's metadata. Peers are not trusted to send valid
// JSON; the caller keeps the member with an empty Meta on error.
func decodeMeta(b []byte) (meta Meta, leaving bool, err error) {
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, false, err
	}
	return w.Meta, w.Leaving, nil
}
