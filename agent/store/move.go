package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/carpkv/carpkv/carp"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// A ring change moves the cluster from ring From (epoch E) to ring To
// (E+1) while it serves (docs/design.md "Ring changes"). Each group
// involved records its part in its own log, and the rules below, applied
// in the state machine, are what keep one owner per key whatever the
// coordinator does:
//
//   - OpMovePrepare records the change (MoveSpec). From then on a delete
//     of a key that leaves this group under To leaves a tombstone, so the
//     delete moves too.
//   - OpMoveFreeze: this group refuses its leaving keys (ErrKeyMoving),
//     reads included, so their state is final.
//   - OpMoveImport stores keys a source hands over, newest version wins,
//     and first raises the version clock to the source's. The import of a
//     source's final round (after its freeze) seals that source.
//   - OpSetRing(To) is accepted only when the group is ready: frozen if it
//     gives keys away, sealed by every other group of From if it receives
//     keys. So no group accepts a key before its previous owner stopped.
//   - OpMoveCleanup drops what the group handed off, OpMoveFinish forgets
//     the change.

// MoveArgs are the arguments of OpMovePrepare, OpMoveFreeze, OpMoveCleanup
// and OpMoveFinish: the change's rings, and for cleanup where to resume
// (after Cursor) and how many keys to drop at most.
type MoveArgs struct {
	From   RingSpec `json:"from"`
	To     RingSpec `json:"to"`
	Cursor []byte   `json:"cursor,omitempty"`
	Limit  int      `json:"limit,omitempty"`
	// End (cleanup): drop every key in (Cursor, End] that the ring gives
	// to others, however many, and resume after End; the leader chose
	// the range from its own state (Store.CleanupRanges) so that it holds
	// about Limit of them. Without End, drop up to Limit after Cursor.
	End []byte `json:"end,omitempty"`
	// Coordinator is the group that records and drives the change
	// (prepare only), so any group in it can say where to ask.
	Coordinator string `json:"coordinator,omitempty"`
}

// MoveSpec is a group's part in a ring change, as committed in its log.
type MoveSpec struct {
	From        RingSpec `json:"from"`
	To          RingSpec `json:"to"`
	Coordinator string   `json:"coordinator,omitempty"`
	Frozen      bool     `json:"frozen,omitempty"`
	Sealed      []string `json:"sealed,omitempty"` // sources whose final round was imported
}

// MaxCleanupLimit bounds the keys one OpMoveCleanup drops, so one entry
// stays one short transaction.
const MaxCleanupLimit = 100_000

// ImportRecord is one key handed over: its value and version, or the
// version of its deletion.
type ImportRecord struct {
	Key     []byte
	Version uint64
	Deleted bool
	Value   []byte
}

// Import is the body of OpMoveImport: records from Source for the change
// to ring Epoch, and Source's version clock when it read them. Seal marks
// the last import of Source's final round.
type Import struct {
	Epoch   uint64
	Source  string
	Clock   uint64
	Seal    bool
	Records []ImportRecord
}

// move is a MoveSpec with its rings built, as held in memory.
type move struct {
	spec     MoveSpec
	from, to *carp.Ring
}

func newMove(spec MoveSpec) (*move, error) {
	from, err := spec.From.Build()
	if err != nil {
		return nil, err
	}
	to, err := spec.To.Build()
	if err != nil {
		return nil, err
	}
	return &move{spec: spec, from: from, to: to}, nil
}

func loadMove(data []byte) (*move, error) {
	if data == nil {
		return nil, nil
	}
	var spec MoveSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("store: corrupt move state: %w", err)
	}
	m, err := newMove(spec)
	if err != nil {
		return nil, fmt.Errorf("store: corrupt move state: %w", err)
	}
	return m, nil
}

// Has reports whether group g is a member of the ring.
func (r RingSpec) Has(g string) bool {
	return slices.ContainsFunc(r.Groups, func(x RingGroup) bool { return x.ID == g })
}

// ready says whether group may adopt the change's ring: a group of From
// must be frozen (it gives keys away), a group of To must be sealed by
// every other group of From (it receives keys). The rule is by ring, not
// by key: a pair that moves no key still seals, at the cost of one empty
// round.
func (m *move) ready(group string) error {
	if m.spec.From.Has(group) && !m.spec.Frozen {
		return fmt.Errorf("%w: group %s is not frozen for epoch %d", ErrMoveNotReady, group, m.spec.To.Epoch)
	}
	if m.spec.To.Has(group) {
		for _, g := range m.spec.From.Groups {
			if g.ID != group && !slices.Contains(m.spec.Sealed, g.ID) {
				return fmt.Errorf("%w: group %s has not received the final round of %s for epoch %d", ErrMoveNotReady, group, g.ID, m.spec.To.Epoch)
			}
		}
	}
	return nil
}

// admit is the ownership rule (invariant 3) for a request on key routed
// by clientEpoch, given the applied ring rg and the change mv (nil: none).
// Outside a change it is rg.checkOwner. During a change not yet adopted
// here (rg at From's epoch, or 0 for a group that joins):
//   - a client that routes by the next ring is served only for keys this
//     group owns under both rings; for the others it must wait (stale_ring);
//   - otherwise the applied ring decides, and once frozen the keys that
//     leave are refused with ErrKeyMoving (retry; their state is final and
//     on its way to the new owner).
func admit(group string, rg *ring, mv *move, key []byte, clientEpoch uint64) error {
	if mv == nil || rg.spec.Epoch >= mv.spec.To.Epoch {
		return rg.checkOwner(group, key, clientEpoch)
	}
	next := mv.to.Owner(key)
	if clientEpoch == mv.spec.To.Epoch {
		if next == group && rg.carp != nil && rg.carp.Owner(key) == group {
			return nil
		}
		return &RingError{Err: ErrStaleRing, Epoch: rg.spec.Epoch}
	}
	if err := rg.checkOwner(group, key, clientEpoch); err != nil {
		return err
	}
	if next != group && mv.spec.Frozen {
		return &RingError{Err: ErrKeyMoving, Epoch: mv.spec.To.Epoch, Owner: next}
	}
	return nil
}

// leaving reports whether a write to key during the change must leave a
// tombstone: the key leaves this group under the next ring.
func (b *batch) leaving(key []byte) bool {
	return b.move != nil && b.ring.spec.Epoch < b.move.spec.To.Epoch && b.move.to.Owner(key) != b.group
}

func (b *batch) tombs() (*bolt.Bucket, error) {
	return b.tx.CreateBucketIfNotExists(bucketMoveTombs)
}

// logLeaving records in the move log a write (at version; deleted: a
// delete) of key if key leaves this group in the change in progress.
func (b *batch) logLeaving(key []byte, version uint64, deleted bool) error {
	if !b.leaving(key) {
		return nil
	}
	log, err := b.tx.CreateBucketIfNotExists(bucketMoveLog)
	if err != nil {
		return err
	}
	return log.Put(key, append(u64(version), boolByte(deleted)))
}

// decodeLogEntry reads a move log value.
func decodeLogEntry(k, v []byte) (version uint64, deleted bool, err error) {
	if len(v) != 9 || v[8] > 1 {
		return 0, false, fmt.Errorf("store: corrupt move log entry of %q", k)
	}
	return binary.BigEndian.Uint64(v), v[8] == 1, nil
}

func (b *batch) saveMove(mv *move) error {
	if mv == nil {
		b.move = nil
		return b.meta.Delete(metaMove)
	}
	enc, err := json.Marshal(mv.spec)
	if err != nil {
		return err
	}
	b.move = mv
	return b.meta.Put(metaMove, enc)
}

func sameRing(a, b RingSpec) bool { return sameJSON(a, b) }

func sameJSON(a, b any) bool {
	ea, _ := json.Marshal(a)
	eb, _ := json.Marshal(b)
	return bytes.Equal(ea, eb)
}

func (b *batch) movePrepare(a MoveArgs, res *Result) error {
	epoch := b.m.epoch
	switch {
	case b.move != nil && sameRing(b.move.spec.To, a.To):
		return nil // a repeated prepare
	case b.move != nil:
		res.Err = fmt.Errorf("%w: group %s is in the change to epoch %d", ErrChangeInProgress, b.group, b.move.spec.To.Epoch)
		return nil
	case epoch >= a.To.Epoch:
		return nil // adopted already: the change went past this group
	case !a.From.Has(b.group) && !a.To.Has(b.group):
		res.Err = fmt.Errorf("%w: group %s is in neither ring of the change", ErrInvalidCommand, b.group)
		return nil
	case epoch == a.From.Epoch && sameRing(b.ring.spec, a.From):
	case epoch == 0 && !a.From.Has(b.group):
		// A standby group that the change adds.
	default:
		res.Err = fmt.Errorf("%w: group %s is at ring epoch %d, the change starts from %d", ErrMoveNotReady, b.group, epoch, a.From.Epoch)
		return nil
	}
	mv, err := newMove(MoveSpec{From: a.From, To: a.To, Coordinator: a.Coordinator})
	if err != nil {
		res.Err = fmt.Errorf("%w: %v", ErrInvalidCommand, err)
		return nil
	}
	return b.saveMove(mv)
}

// moveCurrent checks that the group is in the change to a.To, not yet
// adopted; done reports a change this group has already adopted (steps
// before adoption are then no-ops).
func (b *batch) moveCurrent(a MoveArgs, res *Result) (mv *move, done bool) {
	if b.m.epoch >= a.To.Epoch {
		return nil, true
	}
	if b.move == nil || !sameRing(b.move.spec.To, a.To) {
		res.Err = fmt.Errorf("%w: group %s has not prepared the change to epoch %d", ErrMoveNotReady, b.group, a.To.Epoch)
		return nil, false
	}
	return b.move, false
}

func (b *batch) moveFreeze(a MoveArgs, res *Result) error {
	mv, done := b.moveCurrent(a, res)
	if done || mv == nil || mv.spec.Frozen {
		return nil
	}
	next := *mv
	next.spec.Frozen = true
	return b.saveMove(&next)
}

// moveImport stores what a source hands over. All records are checked
// before any is applied, so a bad import changes nothing.
func (b *batch) moveImport(im Import, res *Result) error {
	if b.m.epoch >= im.Epoch {
		res.Err = fmt.Errorf("%w: group %s acts under epoch %d already", ErrMoveDone, b.group, b.m.epoch)
		return nil
	}
	mv := b.move
	if mv == nil || mv.spec.To.Epoch != im.Epoch {
		res.Err = fmt.Errorf("%w: group %s has not prepared the change to epoch %d", ErrMoveNotReady, b.group, im.Epoch)
		return nil
	}
	if im.Source == b.group || !mv.spec.From.Has(im.Source) {
		res.Err = fmt.Errorf("%w: %s is not a source of the change to epoch %d for %s", ErrInvalidCommand, im.Source, im.Epoch, b.group)
		return nil
	}
	for _, r := range im.Records {
		if mv.from.Owner(r.Key) != im.Source || mv.to.Owner(r.Key) != b.group {
			res.Err = fmt.Errorf("%w: key %q does not move from %s to %s", ErrInvalidCommand, r.Key, im.Source, b.group)
			return nil
		}
	}
	// Versions only grow: every version this group issues from now on is
	// above every version the source gave the keys it hands over.
	b.m.clock = max(b.m.clock, im.Clock)
	tombs, err := b.tombs()
	if err != nil {
		return err
	}
	for _, r := range im.Records {
		cur := uint64(0)
		old := b.kv.Get(r.Key)
		if old != nil {
			if cur, _, err = decodeRecord(old); err != nil {
				return err
			}
		}
		if t := tombs.Get(r.Key); len(t) == 8 {
			cur = max(cur, binary.BigEndian.Uint64(t))
		}
		// Newest wins: a repeated or late import cannot take a key back
		// to an older state, nor bring back a deleted one.
		if r.Version <= cur {
			continue
		}
		oldLen := len(old)
		if r.Deleted {
			if old != nil {
				if err := b.kv.Delete(r.Key); err != nil {
					return err
				}
				b.m.keys--
				b.m.dataBytes -= uint64(len(r.Key) + oldLen - 8)
			}
			if err := tombs.Put(r.Key, u64(r.Version)); err != nil {
				return err
			}
		} else {
			if err := b.kv.Put(r.Key, encodeRecord(r.Version, r.Value)); err != nil {
				return err
			}
			if old != nil {
				b.m.dataBytes -= uint64(len(r.Key) + oldLen - 8)
			} else {
				b.m.keys++
			}
			b.m.dataBytes += uint64(len(r.Key) + len(r.Value))
		}
		res.Count++
	}
	if im.Seal && !slices.Contains(mv.spec.Sealed, im.Source) {
		next := *mv
		next.spec.Sealed = append(slices.Clone(mv.spec.Sealed), im.Source)
		slices.Sort(next.spec.Sealed)
		return b.saveMove(&next)
	}
	return nil
}

// moveCleanup drops up to a.Limit keys after a.Cursor that the applied
// ring gives to another group, once the change is adopted. res.Next is the
// key to resume after; nil when the walk reached the end.
func (b *batch) moveCleanup(a MoveArgs, res *Result) error {
	if b.m.epoch != a.To.Epoch || b.move == nil || !sameRing(b.move.spec.To, a.To) {
		if b.move == nil && b.m.epoch >= a.To.Epoch {
			return nil // finished already
		}
		res.Err = fmt.Errorf("%w: group %s has not adopted epoch %d", ErrMoveNotReady, b.group, a.To.Epoch)
		return nil
	}
	limit := min(max(a.Limit, 1), MaxCleanupLimit)
	scanned, maxScan := 0, 20*limit
	var drop [][]byte
	c := b.kv.Cursor()
	k, v := c.First()
	if a.Cursor != nil {
		k, v = c.Seek(a.Cursor)
		if k != nil && bytes.Equal(k, a.Cursor) {
			k, v = c.Next()
		}
	}
	var last []byte
	for ; k != nil; k, v = c.Next() {
		if a.End != nil {
			// A range: no cap, the leader sized it (and the keys a
			// group gives away only become fewer once it adopted E+1).
			if bytes.Compare(k, a.End) > 0 {
				break
			}
		} else if len(drop) >= limit || scanned >= maxScan {
			break
		}
		scanned++
		last = k
		if b.move.to.Owner(k) != b.group {
			drop = append(drop, append([]byte(nil), k...))
			b.m.dataBytes -= uint64(len(k) + len(v) - 8)
		}
	}
	switch {
	case a.End != nil:
		res.Next = append([]byte(nil), a.End...)
	case k != nil:
		res.Next = append([]byte(nil), last...)
	}
	for _, k := range drop {
		if err := b.kv.Delete(k); err != nil {
			return err
		}
		b.m.keys--
	}
	res.Count = uint64(len(drop))
	return nil
}

// CleanupRange is a range of keys (After, End] of which Keys are given to
// other groups by a change's new ring: the argument of one cleanup entry.
type CleanupRange struct {
	After, End []byte
	Keys       int
}

// CleanupRanges plans up to n cleanup entries after cursor from this
// replica's state, so that a leader can commit them side by side rather
// than one after the other: each range holds at most limit keys to drop
// and spans at most 20 × limit keys. done says the walk reached the last
// key (or the change is over here already). Ranges planned from a state
// that lags the log are still right: once a group adopted the new ring the
// keys it gives away only become fewer.
func (s *Store) CleanupRanges(to uint64, cursor []byte, limit, n int) (ranges []CleanupRange, done bool, err error) {
	mv := s.move.Load()
	if mv == nil || mv.spec.To.Epoch != to {
		if mv == nil && s.Epoch() >= to {
			return nil, true, nil // finished already
		}
		return nil, false, fmt.Errorf("%w: group %s has not prepared the change to epoch %d", ErrMoveNotReady, s.opts.Group, to)
	}
	limit = min(max(limit, 1), MaxCleanupLimit)
	group := s.opts.Group
	err = s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketKV).Cursor()
		k, _ := c.First()
		if cursor != nil {
			k, _ = c.Seek(cursor)
			if k != nil && bytes.Equal(k, cursor) {
				k, _ = c.Next()
			}
		}
		// cur.End is bbolt's key, valid within the transaction: copied
		// when the range is closed.
		cur, scanned := CleanupRange{After: cursor}, 0
		closeRange := func() {
			cur.End = bytes.Clone(cur.End)
			ranges = append(ranges, cur)
		}
		for ; k != nil; k, _ = c.Next() {
			if cur.Keys >= limit || scanned >= 20*limit {
				closeRange()
				if len(ranges) == n {
					return nil
				}
				cur, scanned = CleanupRange{After: cur.End}, 0
			}
			scanned++
			cur.End = k
			if mv.to.Owner(k) != group {
				cur.Keys++
			}
		}
		if cur.End != nil {
			closeRange()
		}
		done = true
		return nil
	})
	return ranges, done, err
}

func (b *batch) moveFinish(a MoveArgs, res *Result) error {
	if b.move == nil {
		return nil
	}
	if !sameRing(b.move.spec.To, a.To) {
		res.Err = fmt.Errorf("%w: group %s is in the change to epoch %d, not %d", ErrChangeInProgress, b.group, b.move.spec.To.Epoch, a.To.Epoch)
		return nil
	}
	if b.m.epoch < a.To.Epoch {
		res.Err = fmt.Errorf("%w: group %s has not adopted epoch %d", ErrMoveNotReady, b.group, a.To.Epoch)
		return nil
	}
	for _, name := range [][]byte{bucketMoveTombs, bucketMoveLog} {
		if b.tx.Bucket(name) != nil {
			if err := b.tx.DeleteBucket(name); err != nil {
				return err
			}
		}
	}
	return b.saveMove(nil)
}

// changeLog records the coordinator's view of a ring change: the first
// record (phase prepare) starts it, and only if none is active and it
// starts from this group's ring; later records of the same change replace
// it, never going back a phase; the record of phase done ends it and is
// kept as the last change.
func (b *batch) changeLog(st wire.RingChangeStatus, res *Result) error {
	var active *wire.RingChangeStatus
	if raw := b.meta.Get(metaChange); raw != nil {
		active = new(wire.RingChangeStatus)
		if err := json.Unmarshal(raw, active); err != nil {
			return fmt.Errorf("store: corrupt change record: %w", err)
		}
	}
	switch {
	case active == nil && st.Phase == wire.PhaseDone && st.Coordinator != "" && st.Coordinator != b.group:
		// A coordinator that the change removed hands its record over to
		// the ring's next coordinator, for status.
		enc, err := json.Marshal(st)
		if err != nil {
			return err
		}
		return b.meta.Put(metaChangeLast, enc)
	case active == nil && st.Phase != wire.PhasePrepare:
		res.Err = fmt.Errorf("%w: no ring change in progress to record phase %s", ErrMoveNotReady, st.Phase)
		return nil
	case active == nil:
		if st.From.Epoch != b.m.epoch || !sameRing(b.ring.spec, RingSpecFromWire(st.From)) {
			res.Err = fmt.Errorf("%w: the change starts from epoch %d, this group is at %d", ErrMoveNotReady, st.From.Epoch, b.m.epoch)
			return nil
		}
	case !sameJSON(active.To, st.To):
		res.Err = &ChangeError{Active: *active}
		return nil
	case wire.PhaseOrder(st.Phase) < wire.PhaseOrder(active.Phase):
		res.Err = fmt.Errorf("%w: change to epoch %d is at phase %s, not going back to %s", ErrMoveNotReady, st.To.Epoch, active.Phase, st.Phase)
		return nil
	}
	enc, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if st.Phase == wire.PhaseDone {
		if err := b.meta.Delete(metaChange); err != nil {
			return err
		}
		return b.meta.Put(metaChangeLast, enc)
	}
	return b.meta.Put(metaChange, enc)
}

// validateBody decodes the body of a move or change command; apply decodes
// it again (the same bytes decode the same way everywhere).
func validateBody(op Op, body []byte) error {
	_, _, _, err := decodeBody(op, body)
	return err
}

func decodeBody(op Op, body []byte) (MoveArgs, Import, wire.RingChangeStatus, error) {
	var (
		a  MoveArgs
		im Import
		st wire.RingChangeStatus
	)
	switch op {
	case OpMoveImport:
		var err error
		if im, err = DecodeImport(body); err != nil {
			return a, im, st, err
		}
	case OpChangeLog:
		if err := json.Unmarshal(body, &st); err != nil {
			return a, im, st, fmt.Errorf("%w: change record: %v", ErrInvalidCommand, err)
		}
		if wire.PhaseOrder(st.Phase) < 0 || st.To.Epoch != st.From.Epoch+1 {
			return a, im, st, fmt.Errorf("%w: change record phase %q from epoch %d to %d", ErrInvalidCommand, st.Phase, st.From.Epoch, st.To.Epoch)
		}
	default:
		if err := json.Unmarshal(body, &a); err != nil {
			return a, im, st, fmt.Errorf("%w: move arguments: %v", ErrInvalidCommand, err)
		}
		if a.From.Epoch == 0 || a.To.Epoch != a.From.Epoch+1 {
			return a, im, st, fmt.Errorf("%w: a change goes from epoch E > 0 to E+1, not %d to %d", ErrInvalidCommand, a.From.Epoch, a.To.Epoch)
		}
		if _, err := a.From.Build(); err != nil {
			return a, im, st, fmt.Errorf("%w: from ring: %v", ErrInvalidCommand, err)
		}
		if _, err := a.To.Build(); err != nil {
			return a, im, st, fmt.Errorf("%w: to ring: %v", ErrInvalidCommand, err)
		}
		if len(a.Cursor) > bolt.MaxKeySize || len(a.End) > bolt.MaxKeySize || a.Limit < 0 || a.Limit > MaxCleanupLimit {
			return a, im, st, fmt.Errorf("%w: cleanup cursor of %d bytes, end of %d bytes, limit %d", ErrInvalidCommand, len(a.Cursor), len(a.End), a.Limit)
		}
		if a.End != nil && a.Cursor != nil && bytes.Compare(a.End, a.Cursor) <= 0 {
			return a, im, st, fmt.Errorf("%w: cleanup range ends at or before its cursor", ErrInvalidCommand)
		}
	}
	return a, im, st, nil
}

func (b *batch) applyMove(c Command, res *Result) error {
	a, im, st, err := decodeBody(c.Op, c.Body)
	if err != nil {
		res.Err = err
		return nil
	}
	switch c.Op {
	case OpMovePrepare:
		return b.movePrepare(a, res)
	case OpMoveFreeze:
		return b.moveFreeze(a, res)
	case OpMoveImport:
		return b.moveImport(im, res)
	case OpMoveCleanup:
		return b.moveCleanup(a, res)
	case OpMoveFinish:
		return b.moveFinish(a, res)
	case OpChangeLog:
		return b.changeLog(st, res)
	}
	return nil
}

// EncodeImport encodes an Import: epoch, source, clock, seal, then each
// record (key, version, deleted, value).
func EncodeImport(im Import) []byte {
	n := 3*binary.MaxVarintLen64 + len(im.Source) + 2
	for _, r := range im.Records {
		n += 3*binary.MaxVarintLen64 + 1 + len(r.Key) + len(r.Value)
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, im.Epoch)
	b = appendBytes(b, []byte(im.Source))
	b = binary.AppendUvarint(b, im.Clock)
	b = append(b, boolByte(im.Seal))
	b = binary.AppendUvarint(b, uint64(len(im.Records)))
	for _, r := range im.Records {
		b = appendBytes(b, r.Key)
		b = binary.AppendUvarint(b, r.Version)
		b = append(b, boolByte(r.Deleted))
		if !r.Deleted {
			b = appendBytes(b, r.Value)
		}
	}
	return b
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// DecodeImport decodes what EncodeImport encoded, refusing (with
// ErrInvalidCommand) truncated or trailing input, keys and values over the
// limits, version 0 and flags other than 0 and 1. Keys and values alias b.
func DecodeImport(b []byte) (Import, error) {
	d := decoder{b: b}
	var im Import
	im.Epoch = d.uvarint()
	im.Source = string(d.bytes())
	im.Clock = d.uvarint()
	im.Seal = d.flag()
	n := d.uvarint()
	// Each record takes at least 4 bytes: bound n by what is left.
	if d.err == nil && n > uint64(len(d.b))/4 {
		d.err = errTruncated
	}
	if d.err == nil {
		im.Records = make([]ImportRecord, n)
	}
	for i := range im.Records {
		r := &im.Records[i]
		r.Key = d.bytes()
		r.Version = d.uvarint()
		r.Deleted = d.flag()
		if !r.Deleted {
			r.Value = d.bytes()
		}
		if d.err != nil {
			break
		}
		if len(r.Key) == 0 || len(r.Key) > bolt.MaxKeySize || len(r.Value) > maxValueSize || r.Version == 0 {
			return Import{}, fmt.Errorf("%w: import record %d: key of %d bytes, value of %d, version %d", ErrInvalidCommand, i, len(r.Key), len(r.Value), r.Version)
		}
		if r.Version > im.Clock {
			return Import{}, fmt.Errorf("%w: import record %d: version %d above the source's clock %d", ErrInvalidCommand, i, r.Version, im.Clock)
		}
	}
	if d.err != nil {
		return Import{}, d.err
	}
	if len(d.b) != 0 {
		return Import{}, fmt.Errorf("%w: %d trailing bytes", ErrInvalidCommand, len(d.b))
	}
	if im.Epoch == 0 || im.Source == "" {
		return Import{}, fmt.Errorf("%w: import without epoch or source", ErrInvalidCommand)
	}
	return im, nil
}

func (d *decoder) flag() bool {
	v := d.byte()
	if d.err == nil && v > 1 {
		d.err = fmt.Errorf("%w: flag byte %d", ErrInvalidCommand, v)
	}
	return v == 1
}

// ExportChunk is one chunk of a source's copy round: the records for each
// destination group, the version clock of the state they were read from,
// and where the round resumes (Next nil: the round is complete).
type ExportChunk struct {
	Records map[string][]ImportRecord
	Clock   uint64
	Next    []byte
}

// Export cursors name the walk a round is in: the whole kv bucket (the
// first round), then the move log.
const (
	cursorKV  = 'k'
	cursorLog = 'l'
)

// ExportScan reads, in one short read transaction, the keys this group
// hands to other groups in its change to epoch to, from after cursor,
// until about maxBytes of records or maxScan keys looked at; the caller
// sends them and asks again from Next. The first round (since 0) walks
// every key, then the move log for the deletions; a later round walks only
// the move log (every write of a leaving key since the change was
// prepared) for what has a version above since, so the final round, which
// runs while the leaving keys are refused, costs what changed since the
// last round, not the size of the group.
//
// Reading the local state is enough: a round may miss writes applied
// meanwhile, and the next round (since = this round's first Clock) picks
// them up; the final round runs after the freeze, when the leaving keys no
// longer change, on a leader that has applied everything committed.
func (s *Store) ExportScan(to, since uint64, cursor []byte, maxBytes, maxScan int) (ExportChunk, error) {
	out := ExportChunk{Records: map[string][]ImportRecord{}}
	mv := s.move.Load()
	if mv == nil || mv.spec.To.Epoch != to {
		return out, fmt.Errorf("%w: group %s has not prepared the change to epoch %d", ErrMoveNotReady, s.opts.Group, to)
	}
	group := s.opts.Group
	err := s.view(func(tx *bolt.Tx) error {
		m, err := readMeta(tx.Bucket(bucketMeta))
		if err != nil {
			return err
		}
		out.Clock = m.clock
		walks := []byte{cursorKV, cursorLog}
		if since > 0 {
			walks = walks[1:]
		}
		var after []byte
		if len(cursor) > 0 {
			if i := bytes.IndexByte(walks, cursor[0]); i >= 0 {
				walks, after = walks[i:], cursor[1:]
			}
		}
		kv := tx.Bucket(bucketKV)
		size, scanned := 0, 0
		for _, w := range walks {
			bk := kv
			if w == cursorLog {
				bk = tx.Bucket(bucketMoveLog)
			}
			if bk == nil {
				after = nil
				continue
			}
			c := bk.Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			var last []byte
			for ; k != nil; k, v = c.Next() {
				if size >= maxBytes || scanned >= maxScan {
					// Resume after the last key looked at.
					out.Next = append([]byte{w}, last...)
					return nil
				}
				scanned++
				last = k
				dest := mv.to.Owner(k)
				if dest == group || mv.from.Owner(k) != group {
					continue
				}
				r, ok, err := exportRecord(kv, w, k, v, since)
				if err != nil {
					return err
				}
				if ok {
					out.Records[dest] = append(out.Records[dest], r)
					size += len(r.Key) + len(r.Value) + 16
				}
			}
			after = nil
		}
		return nil
	})
	return out, err
}

// exportRecord is the record to send for key k met in walk w (v its value
// there), if it changed after since. In the kv walk that is its value; in
// the move log a deletion, or (after the first round) its current value.
func exportRecord(kv *bolt.Bucket, w byte, k, v []byte, since uint64) (ImportRecord, bool, error) {
	if w == cursorLog {
		ver, deleted, err := decodeLogEntry(k, v)
		if err != nil || ver <= since {
			return ImportRecord{}, false, err
		}
		if deleted {
			return ImportRecord{Key: bytes.Clone(k), Version: ver, Deleted: true}, true, nil
		}
		if since == 0 {
			return ImportRecord{}, false, nil // the kv walk sent its value
		}
		if v = kv.Get(k); v == nil {
			return ImportRecord{}, false, nil
		}
	}
	ver, val, err := decodeRecord(v)
	if err != nil || ver <= since {
		return ImportRecord{}, false, err
	}
	return ImportRecord{Key: bytes.Clone(k), Version: ver, Value: bytes.Clone(val)}, true, nil
}

// Move returns this group's part in the ring change in progress, if any.
func (s *Store) Move() (MoveSpec, bool) {
	mv := s.move.Load()
	if mv == nil {
		return MoveSpec{}, false
	}
	return mv.spec, true
}

// Change returns the ring change this group coordinates (active) and the
// last one it completed, as recorded by OpChangeLog.
func (s *Store) Change() (active, last *wire.RingChangeStatus, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		for _, f := range []struct {
			key []byte
			dst **wire.RingChangeStatus
		}{{metaChange, &active}, {metaChangeLast, &last}} {
			if raw := meta.Get(f.key); raw != nil {
				st := new(wire.RingChangeStatus)
				if err := json.Unmarshal(raw, st); err != nil {
					return fmt.Errorf("store: corrupt change record: %w", err)
				}
				*f.dst = st
			}
		}
		return nil
	})
	return active, last, err
}
