package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Op is the operation of a Command.
type Op uint8

// The operations. Their numeric values are on disk in every Raft log: never
// renumber them.
const (
	OpPut          Op = 1 // write Key=Value, optionally conditional
	OpDelete       Op = 2 // delete Key, optionally conditional
	OpRegisterNode Op = 3 // upsert Node in the node registry
	OpRemoveNode   Op = 4 // drop Node.ID from the registry and mark it removed (registered or not)
	OpSetRing      Op = 5 // adopt Ring if its epoch is higher than the current one

	// Ring changes (move.go). Body holds the op's arguments.
	OpMovePrepare Op = 6  // record the change From -> To (a MoveArgs, JSON)
	OpMoveFreeze  Op = 7  // refuse the keys that leave this group under To (MoveArgs)
	OpMoveImport  Op = 8  // store keys handed over by a source (binary, EncodeImport)
	OpMoveCleanup Op = 9  // drop keys this group no longer owns (MoveArgs with Cursor, Limit)
	OpMoveFinish  Op = 10 // forget the change (MoveArgs)
	OpChangeLog   Op = 11 // the coordinator's record of a ring change (wire.RingChangeStatus, JSON)

	// OpPutBatch writes many keys in one entry (batch.go): each key is
	// checked and written on its own, with a result of its own. Body holds
	// the pairs (EncodePuts).
	OpPutBatch Op = 12
)

func (o Op) isMove() bool {
	switch o {
	case OpMovePrepare, OpMoveFreeze, OpMoveImport, OpMoveCleanup, OpMoveFinish, OpChangeLog:
		return true
	}
	return false
}

func (o Op) String() string {
	switch o {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpRegisterNode:
		return "register-node"
	case OpRemoveNode:
		return "remove-node"
	case OpSetRing:
		return "set-ring"
	case OpMovePrepare:
		return "move-prepare"
	case OpMoveFreeze:
		return "move-freeze"
	case OpMoveImport:
		return "move-import"
	case OpMoveCleanup:
		return "move-cleanup"
	case OpMoveFinish:
		return "move-finish"
	case OpChangeLog:
		return "change-log"
	case OpPutBatch:
		return "put-batch"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// NodeInfo is one entry of the replicated node registry.
type NodeInfo struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// Command is the payload of a Raft LogCommand entry. Which fields matter
// depends on Op:
//
//	OpPut          Key, Value, HasCAS, Expect, RingEpoch
//	OpDelete       Key, HasCAS, Expect, RingEpoch
//	OpPutBatch     Body (EncodePuts), RingEpoch
//	OpRegisterNode Node
//	OpRemoveNode   Node.ID
//	OpSetRing      Ring
//	OpMove*, OpChangeLog Body
//
// Other fields are not encoded. Expect is only meaningful with HasCAS: for
// OpPut, Expect 0 means "the key must be absent"; otherwise the key's
// current version must equal Expect. RingEpoch is the ring epoch the client
// routed the request by (0: none); the key's ownership is checked when the
// entry is applied, under the ring the group has applied at that point of
// its log.
type Command struct {
	Op        Op
	Key       []byte
	Value     []byte
	HasCAS    bool
	Expect    uint64
	RingEpoch uint64
	Node      NodeInfo
	Ring      RingSpec
	Body      []byte
}

// codecVersion is the first byte of every encoded command, so the format can
// change later while old log entries stay readable.
const codecVersion = 1

const (
	flagCAS       = 1 << 0
	flagRingEpoch = 1 << 1
)

// maxValueSize keeps the stored record (8-byte version + value) within what
// bbolt accepts, so a bbolt Put can never fail on input we accepted.
const maxValueSize = bolt.MaxValueSize - 8

// Validate reports whether the command can be applied. ApplyBatch runs it
// on every entry, so it must stay deterministic and must not get stricter
// for entries already in logs; the agent calls it before proposing to
// refuse bad input early.
func (c Command) Validate() error {
	switch c.Op {
	case OpPut, OpDelete:
		if len(c.Key) == 0 {
			return fmt.Errorf("%w: empty key", ErrInvalidCommand)
		}
		if len(c.Key) > bolt.MaxKeySize {
			return fmt.Errorf("%w: key of %d bytes over %d", ErrInvalidCommand, len(c.Key), bolt.MaxKeySize)
		}
		if c.Op == OpPut && len(c.Value) > maxValueSize {
			return fmt.Errorf("%w: value of %d bytes over %d", ErrInvalidCommand, len(c.Value), maxValueSize)
		}
	case OpRegisterNode, OpRemoveNode:
		if c.Node.ID == "" {
			return fmt.Errorf("%w: empty node id", ErrInvalidCommand)
		}
		if len(c.Node.ID) > bolt.MaxKeySize {
			return fmt.Errorf("%w: node id of %d bytes over %d", ErrInvalidCommand, len(c.Node.ID), bolt.MaxKeySize)
		}
	case OpSetRing:
		if c.Ring.Epoch == 0 {
			return fmt.Errorf("%w: ring epoch 0", ErrInvalidCommand)
		}
		if _, err := c.Ring.Build(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidCommand, err)
		}
	case OpMovePrepare, OpMoveFreeze, OpMoveImport, OpMoveCleanup, OpMoveFinish, OpChangeLog:
		if err := validateBody(c.Op, c.Body); err != nil {
			return err
		}
	case OpPutBatch:
		if _, err := DecodePuts(c.Body); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: unknown op %d", ErrInvalidCommand, uint8(c.Op))
	}
	return nil
}

// Marshal encodes the command: a version byte, the op byte, then the op's
// fields; byte strings are prefixed with their uvarint length, integers are
// uvarints. UnmarshalCommand(c.Marshal()) gives back c's encoded fields.
func (c Command) Marshal() []byte {
	n := 2
	switch c.Op {
	case OpPut, OpDelete:
		n += 1 + 3*binary.MaxVarintLen64 + len(c.Key)
		if c.Op == OpPut {
			n += binary.MaxVarintLen64 + len(c.Value)
		}
	case OpRegisterNode:
		n += 3*binary.MaxVarintLen64 + len(c.Node.ID) + len(c.Node.RaftAddr) + len(c.Node.HTTPAddr)
	case OpRemoveNode:
		n += binary.MaxVarintLen64 + len(c.Node.ID)
	case OpPutBatch:
		n += 1 + 2*binary.MaxVarintLen64 + len(c.Body)
	case OpSetRing:
		n += 3*binary.MaxVarintLen64 + len(c.Ring.Mode)
		for _, g := range c.Ring.Groups {
			n += binary.MaxVarintLen64 + len(g.ID) + 8
		}
	default:
		n += binary.MaxVarintLen64 + len(c.Body)
	}
	b := make([]byte, 0, n)
	b = append(b, codecVersion, byte(c.Op))
	switch c.Op {
	case OpPut, OpDelete:
		var flags byte
		if c.HasCAS {
			flags |= flagCAS
		}
		if c.RingEpoch != 0 {
			flags |= flagRingEpoch
		}
		b = append(b, flags)
		if c.HasCAS {
			b = binary.AppendUvarint(b, c.Expect)
		}
		if c.RingEpoch != 0 {
			b = binary.AppendUvarint(b, c.RingEpoch)
		}
		b = appendBytes(b, c.Key)
		if c.Op == OpPut {
			b = appendBytes(b, c.Value)
		}
	case OpPutBatch:
		var flags byte
		if c.RingEpoch != 0 {
			flags |= flagRingEpoch
		}
		b = append(b, flags)
		if c.RingEpoch != 0 {
			b = binary.AppendUvarint(b, c.RingEpoch)
		}
		b = appendBytes(b, c.Body)
	case OpRegisterNode:
		b = appendBytes(b, []byte(c.Node.ID))
		b = appendBytes(b, []byte(c.Node.RaftAddr))
		b = appendBytes(b, []byte(c.Node.HTTPAddr))
	case OpRemoveNode:
		b = appendBytes(b, []byte(c.Node.ID))
	case OpSetRing:
		b = appendRing(b, c.Ring)
	case OpMovePrepare, OpMoveFreeze, OpMoveImport, OpMoveCleanup, OpMoveFinish, OpChangeLog:
		b = appendBytes(b, c.Body)
	}
	return b
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalCommand decodes what Marshal encoded. It rejects, with an error
// matching ErrInvalidCommand, an unknown version or op, unknown flags,
// truncated input, non-minimal varints and trailing bytes, so every accepted
// input is exactly the Marshal of its result. Key and Value alias data.
func UnmarshalCommand(data []byte) (Command, error) {
	d := decoder{b: data}
	var c Command
	if v := d.byte(); d.err == nil && v != codecVersion {
		return Command{}, fmt.Errorf("%w: unknown codec version %d", ErrInvalidCommand, v)
	}
	c.Op = Op(d.byte())
	switch c.Op {
	case OpPut, OpDelete:
		flags := d.byte()
		if d.err == nil && flags&^(flagCAS|flagRingEpoch) != 0 {
			return Command{}, fmt.Errorf("%w: unknown flags %#x", ErrInvalidCommand, flags)
		}
		c.HasCAS = flags&flagCAS != 0
		if c.HasCAS {
			c.Expect = d.uvarint()
		}
		if flags&flagRingEpoch != 0 {
			if c.RingEpoch = d.uvarint(); d.err == nil && c.RingEpoch == 0 {
				// Zero is encoded by leaving the flag out.
				return Command{}, fmt.Errorf("%w: explicit ring epoch 0", ErrInvalidCommand)
			}
		}
		c.Key = d.bytes()
		if c.Op == OpPut {
			c.Value = d.bytes()
		}
	case OpPutBatch:
		flags := d.byte()
		if d.err == nil && flags&^flagRingEpoch != 0 {
			return Command{}, fmt.Errorf("%w: unknown flags %#x", ErrInvalidCommand, flags)
		}
		if flags&flagRingEpoch != 0 {
			if c.RingEpoch = d.uvarint(); d.err == nil && c.RingEpoch == 0 {
				return Command{}, fmt.Errorf("%w: explicit ring epoch 0", ErrInvalidCommand)
			}
		}
		c.Body = d.bytes()
	case OpRegisterNode:
		c.Node.ID = string(d.bytes())
		c.Node.RaftAddr = string(d.bytes())
		c.Node.HTTPAddr = string(d.bytes())
	case OpRemoveNode:
		c.Node.ID = string(d.bytes())
	case OpSetRing:
		c.Ring = d.ring()
	case OpMovePrepare, OpMoveFreeze, OpMoveImport, OpMoveCleanup, OpMoveFinish, OpChangeLog:
		c.Body = d.bytes()
	default:
		if d.err == nil {
			return Command{}, fmt.Errorf("%w: unknown op %d", ErrInvalidCommand, uint8(c.Op))
		}
	}
	if d.err != nil {
		return Command{}, d.err
	}
	if len(d.b) != 0 {
		return Command{}, fmt.Errorf("%w: %d trailing bytes", ErrInvalidCommand, len(d.b))
	}
	return c, nil
}

var errTruncated = fmt.Errorf("%w: truncated", ErrInvalidCommand)

// decoder reads fields off b; after the first error every read returns a
// zero value and err keeps that first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errTruncated
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.err = errTruncated
		return 0
	case n < 0:
		d.err = fmt.Errorf("%w: varint overflows 64 bits", ErrInvalidCommand)
		return 0
	case n != uvarintLen(v):
		// Overlong encodings would give one command two encodings.
		d.err = fmt.Errorf("%w: non-minimal varint", ErrInvalidCommand)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	// Compare as uint64: a huge length must not wrap to a small int.
	if n > uint64(len(d.b)) {
		d.err = errTruncated
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
