package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	"github.com/carpkv/carpkv/carp"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// RingSpec is a committed ring: the epoch from which the group acts under
// it, the scoring mode, and the groups with their weights. Every group
// records the ring in its own log (OpSetRing); the epoch only grows.
type RingSpec struct {
	Epoch  uint64      `json:"epoch"`
	Mode   string      `json:"mode"` // "strong" or "spec"
	Groups []RingGroup `json:"groups"`
}

// RingGroup is one member of a ring.
type RingGroup struct {
	ID     string  `json:"id"`
	Weight float64 `json:"weight"`
}

// Build returns the carp ring of the spec, or why it is invalid.
func (r RingSpec) Build() (*carp.Ring, error) {
	mode, err := carp.ParseMode(r.Mode)
	if err != nil {
		return nil, err
	}
	members := make([]carp.Member, len(r.Groups))
	for i, g := range r.Groups {
		members[i] = carp.Member{ID: g.ID, Weight: g.Weight}
	}
	return carp.New(members, carp.WithMode(mode), carp.WithEpoch(r.Epoch))
}

// Wire is the spec in the HTTP protocol's form.
func (r RingSpec) Wire() wire.RingSpec {
	w := wire.RingSpec{Epoch: r.Epoch, Mode: r.Mode}
	for _, g := range r.Groups {
		w.Groups = append(w.Groups, wire.RingGroupSpec{ID: g.ID, Weight: g.Weight})
	}
	return w
}

// RingSpecFromWire is the inverse of Wire.
func RingSpecFromWire(w wire.RingSpec) RingSpec {
	r := RingSpec{Epoch: w.Epoch, Mode: w.Mode}
	for _, g := range w.Groups {
		r.Groups = append(r.Groups, RingGroup{ID: g.ID, Weight: g.Weight})
	}
	return r
}

// ring is a validated RingSpec with its carp ring, as held in memory.
type ring struct {
	spec RingSpec
	carp *carp.Ring // nil when no ring was committed (epoch 0)
}

func loadRing(data []byte) (*ring, error) {
	if data == nil {
		return &ring{}, nil
	}
	var spec RingSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("store: corrupt ring: %w", err)
	}
	r, err := spec.Build()
	if err != nil {
		return nil, fmt.Errorf("store: corrupt ring: %w", err)
	}
	return &ring{spec: spec, carp: r}, nil
}

// checkOwner is the ownership rule of DESIGN.md invariant 3: under the
// group's applied ring, only the owner group serves a key, and a request
// made under a newer ring than the group has applied is refused (the key
// may already belong to another group under that ring). Without a ring
// (epoch 0) a group is standalone and serves every key.
func (r *ring) checkOwner(group string, key []byte, clientEpoch uint64) error {
	if clientEpoch > r.spec.Epoch {
		return &RingError{Err: ErrStaleRing, Epoch: r.spec.Epoch}
	}
	if r.carp == nil {
		return nil
	}
	if owner := r.carp.Owner(key); owner != group {
		return &RingError{Err: ErrWrongGroup, Epoch: r.spec.Epoch, Owner: owner}
	}
	return nil
}

func appendRing(b []byte, r RingSpec) []byte {
	b = binary.AppendUvarint(b, r.Epoch)
	b = appendBytes(b, []byte(r.Mode))
	b = binary.AppendUvarint(b, uint64(len(r.Groups)))
	for _, g := range r.Groups {
		b = appendBytes(b, []byte(g.ID))
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(g.Weight))
	}
	return b
}

func (d *decoder) ring() RingSpec {
	var r RingSpec
	r.Epoch = d.uvarint()
	r.Mode = string(d.bytes())
	n := d.uvarint()
	// Each group takes at least 9 bytes: bound n by what is left so a
	// forged count cannot make us allocate without limit.
	if d.err != nil || n > uint64(len(d.b))/9 {
		if d.err == nil {
			d.err = errTruncated
		}
		return RingSpec{}
	}
	r.Groups = make([]RingGroup, n)
	for i := range r.Groups {
		r.Groups[i].ID = string(d.bytes())
		if d.err == nil && len(d.b) < 8 {
			d.err = errTruncated
		}
		if d.err != nil {
			return RingSpec{}
		}
		r.Groups[i].Weight = math.Float64frombits(binary.BigEndian.Uint64(d.b))
		d.b = d.b[8:]
	}
	return r
}
