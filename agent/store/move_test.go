package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/carpkv/carpkv/kvclient/wire"
)

func openGroup(t testing.TB, group string) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), Options{NoSync: true, Group: group})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func moveCmd(op Op, from, to RingSpec) Command {
	return moveCmdAt(op, from, to, nil, 0)
}

func moveCmdAt(op Op, from, to RingSpec, cursor []byte, limit int) Command {
	body, err := json.Marshal(MoveArgs{From: from, To: to, Cursor: cursor, Limit: limit})
	if err != nil {
		panic(err)
	}
	return Command{Op: op, Body: body}
}

func importCmd(im Import) Command { return Command{Op: OpMoveImport, Body: EncodeImport(im)} }

func mustOK(t testing.TB, what string, rs []*Result) {
	t.Helper()
	for _, r := range rs {
		if r.Err != nil {
			t.Fatalf("%s: %v", what, r.Err)
		}
	}
}

// moveWorld is a cluster of stores going from ring from to ring to.
type moveWorld struct {
	t        *testing.T
	from, to RingSpec
	groups   map[string]*Store
	acked    map[string]entry // the last acknowledged state of every key ("" version 0: deleted)
}

func newMoveWorld(t *testing.T, from, to RingSpec) *moveWorld {
	w := &moveWorld{t: t, from: from, to: to, groups: map[string]*Store{}, acked: map[string]entry{}}
	for _, g := range append(append([]RingGroup{}, from.Groups...), to.Groups...) {
		if w.groups[g.ID] == nil {
			w.groups[g.ID] = openGroup(t, g.ID)
		}
	}
	for _, g := range from.Groups {
		mustOK(t, "first ring", applyNext(t, w.groups[g.ID], Command{Op: OpSetRing, Ring: from}))
	}
	return w
}

func (w *moveWorld) owner(spec RingSpec, key string) string {
	r, err := spec.Build()
	if err != nil {
		w.t.Fatal(err)
	}
	return r.Owner([]byte(key))
}

// put writes key at its owner under from, as a client at epoch from would.
func (w *moveWorld) put(key, value string) *Result {
	c := put(key, value)
	c.RingEpoch = w.from.Epoch
	r := applyNext(w.t, w.groups[w.owner(w.from, key)], c)[0]
	if r.Err == nil {
		w.acked[key] = entry{value, r.Version}
	}
	return r
}

func (w *moveWorld) del(key string) *Result {
	c := del(key)
	c.RingEpoch = w.from.Epoch
	r := applyNext(w.t, w.groups[w.owner(w.from, key)], c)[0]
	if r.Err == nil {
		w.acked[key] = entry{}
	}
	return r
}

// round copies every source's changes since its watermark, in small
// chunks, and returns the new watermarks.
func (w *moveWorld) round(since map[string]uint64, seal bool) map[string]uint64 {
	next := map[string]uint64{}
	for _, g := range w.from.Groups {
		src := w.groups[g.ID]
		var cursor []byte
		first := true
		for {
			ch, err := src.ExportScan(w.to.Epoch, since[g.ID], cursor, 200, 25)
			if err != nil {
				w.t.Fatalf("export from %s: %v", g.ID, err)
			}
			if first {
				next[g.ID], first = ch.Clock, false
			}
			for dest, recs := range ch.Records {
				mustOK(w.t, "import", applyNext(w.t, w.groups[dest], importCmd(Import{Epoch: w.to.Epoch, Source: g.ID, Clock: ch.Clock, Records: recs})))
			}
			if cursor = ch.Next; cursor == nil {
				break
			}
		}
		if seal {
			for _, d := range w.to.Groups {
				if d.ID != g.ID {
					mustOK(w.t, "seal", applyNext(w.t, w.groups[d.ID], importCmd(Import{Epoch: w.to.Epoch, Source: g.ID, Clock: src.Stats().Clock, Seal: true})))
				}
			}
		}
	}
	return next
}

func (w *moveWorld) all(op Op) {
	for id, s := range w.groups {
		mustOK(w.t, fmt.Sprintf("%v at %s", op, id), applyNext(w.t, s, moveCmd(op, w.from, w.to)))
	}
}

// A group joins: keys move to it once, deletes move too, versions keep
// growing, at no point do two groups accept a key, and the sources end up
// holding only what they own.
func TestRingChangeHandsEveryKeyOverOnce(t *testing.T) {
	from := RingSpec{Epoch: 1, Mode: "strong", Groups: []RingGroup{{"g1", 1}, {"g2", 1}}}
	to := RingSpec{Epoch: 2, Mode: "strong", Groups: []RingGroup{{"g1", 1}, {"g2", 1}, {"g3", 1}}}
	w := newMoveWorld(t, from, to)
	const n = 400
	for i := range n {
		mustOK(t, "put", []*Result{w.put(fmt.Sprintf("k%03d", i), "v0")})
	}
	w.all(OpMovePrepare)

	// Round 1 while the keys keep changing; writes and deletes between
	// rounds, and after the last copy round, must all arrive.
	since := w.round(map[string]uint64{}, false)
	for i := 0; i < n; i += 3 {
		mustOK(t, "update", []*Result{w.put(fmt.Sprintf("k%03d", i), "v1")})
	}
	for i := 1; i < n; i += 7 {
		mustOK(t, "delete", []*Result{w.del(fmt.Sprintf("k%03d", i))})
	}
	since = w.round(since, false)
	for i := 2; i < n; i += 11 {
		if k := fmt.Sprintf("k%03d", i); w.acked[k].version != 0 {
			mustOK(t, "delete", []*Result{w.del(k)})
		}
	}
	mustOK(t, "recreate", []*Result{w.put("k001", "again")})

	// Nobody adopts the next ring before it is ready.
	for id, s := range w.groups {
		if r := applyNext(t, s, Command{Op: OpSetRing, Ring: to})[0]; !errors.Is(r.Err, ErrMoveNotReady) {
			t.Fatalf("%s adopted epoch 2 before the freeze: %v", id, r.Err)
		}
	}
	w.all(OpMoveFreeze)
	moving, staying := 0, 0
	for i := range n {
		key := fmt.Sprintf("k%03d", i)
		src := w.groups[w.owner(from, key)]
		c := put(key, "late")
		c.RingEpoch = 1
		r := applyNext(t, src, c)[0]
		var re *RingError
		if w.owner(to, key) != w.owner(from, key) {
			moving++
			if !errors.As(r.Err, &re) || !errors.Is(r.Err, ErrKeyMoving) || re.Epoch != 2 || re.Owner != "g3" {
				t.Fatalf("write to frozen moving key %s: %v, want key moving to g3 at epoch 2", key, r.Err)
			}
			if err := src.CheckOwner([]byte(key), 1); !errors.Is(err, ErrKeyMoving) {
				t.Fatalf("read of frozen moving key %s: %v", key, err)
			}
		} else {
			staying++
			if r.Err != nil {
				t.Fatalf("write to staying key %s during the freeze: %v", key, r.Err)
			}
			w.acked[key] = entry{"late", r.Version}
		}
	}
	if moving < n/5 || moving > n/2 {
		t.Fatalf("%d of %d keys move, want about a third", moving, n)
	}
	// The destination still refuses what it has not adopted.
	if err := w.groups["g3"].CheckOwner([]byte("k000"), 1); err == nil {
		t.Fatal("g3 serves keys before adopting the ring")
	}
	w.round(since, true)
	for _, id := range []string{"g3", "g1", "g2"} {
		mustOK(t, "adopt "+id, applyNext(t, w.groups[id], Command{Op: OpSetRing, Ring: to}))
	}
	// A late import (a copy round of a slow coordinator) changes nothing.
	if r := applyNext(t, w.groups["g3"], importCmd(Import{Epoch: 2, Source: "g1", Clock: 1, Records: []ImportRecord{}}))[0]; !errors.Is(r.Err, ErrMoveDone) {
		t.Fatalf("import after adoption: %v, want ErrMoveDone", r.Err)
	}

	// g1 cleans up one entry after the other, each resuming where the
	// last one stopped; g2 as a leader does, in ranges planned from its
	// state, committed three at a time and here applied last first.
	var cursor []byte
	for rounds := 0; ; rounds++ {
		r := applyNext(t, w.groups["g1"], moveCmdAt(OpMoveCleanup, from, to, cursor, 7))[0]
		if r.Err != nil {
			t.Fatalf("cleanup g1: %v", r.Err)
		}
		if cursor = r.Next; cursor == nil {
			break
		}
		if rounds > n {
			t.Fatal("cleanup does not end")
		}
	}
	cursor = nil
	for rounds := 0; ; rounds++ {
		ranges, done, err := w.groups["g2"].CleanupRanges(2, cursor, 7, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range slices.Backward(ranges) {
			if r.Keys > 7 {
				t.Fatalf("a range of %d keys to drop, limit 7", r.Keys)
			}
			body, err := json.Marshal(MoveArgs{From: from, To: to, Cursor: r.After, End: r.End, Limit: r.Keys})
			if err != nil {
				t.Fatal(err)
			}
			res := applyNext(t, w.groups["g2"], Command{Op: OpMoveCleanup, Body: body})[0]
			if res.Err != nil || !bytes.Equal(res.Next, r.End) || res.Count > uint64(r.Keys) {
				t.Fatalf("cleanup range (%q, %q] of %d keys: dropped %d, next %q, %v", r.After, r.End, r.Keys, res.Count, res.Next, res.Err)
			}
		}
		if done {
			break
		}
		cursor = ranges[len(ranges)-1].End
		if rounds > n {
			t.Fatal("cleanup does not end")
		}
	}
	if ranges, done, err := w.groups["g2"].CleanupRanges(2, nil, 7, 3); err != nil || !done || slices.ContainsFunc(ranges, func(r CleanupRange) bool { return r.Keys > 0 }) {
		t.Fatalf("after the cleanup, g2 plans %+v (done %v, %v), want nothing to drop", ranges, done, err)
	}
	w.all(OpMoveFinish)
	if ranges, done, err := w.groups["g2"].CleanupRanges(2, nil, 7, 3); err != nil || !done || len(ranges) != 0 {
		t.Fatalf("after finish: %+v, %v, %v; want done", ranges, done, err)
	}

	// Every key is where the new ring says, with its last acknowledged
	// value and version, and nowhere else.
	clocks := map[string]uint64{}
	for id, s := range w.groups {
		clocks[id] = s.Stats().Clock
		got := contents(t, s)
		if st := s.Stats(); st.Keys != len(got) {
			t.Fatalf("%s counts %d keys, holds %d", id, st.Keys, len(got))
		}
		for k := range got {
			if w.owner(to, k) != id {
				t.Fatalf("%s still holds %s, owned by %s", id, k, w.owner(to, k))
			}
		}
		if _, ok := s.Move(); ok {
			t.Fatalf("%s still has a change after finish", id)
		}
	}
	for key, want := range w.acked {
		got, ok := contents(t, w.groups[w.owner(to, key)])[key]
		if want.version == 0 {
			if ok {
				t.Fatalf("deleted key %s came back at %s: %+v", key, w.owner(to, key), got)
			}
			continue
		}
		if !ok || got != want {
			t.Fatalf("key %s at %s = %+v (present %v), want %+v", key, w.owner(to, key), got, ok, want)
		}
	}
	// Versions only grow: g3's next write is above anything the sources issued.
	var moved string
	for key, e := range w.acked {
		if w.owner(to, key) == "g3" && e.version != 0 {
			moved = key
			break
		}
	}
	c := put(moved, "after")
	c.RingEpoch = 2
	r := applyNext(t, w.groups["g3"], c)[0]
	if r.Err != nil || r.Version <= max(clocks["g1"], clocks["g2"]) {
		t.Fatalf("write at the new owner: version %d err %v, want above the sources' clocks %v", r.Version, r.Err, clocks)
	}
}

// Clients that already route by the next ring are served by a group that
// has not adopted it yet for the keys it keeps, and told to wait for the
// others.
func TestClientsOfTheNextRingAreServedForKeysThatStay(t *testing.T) {
	from := RingSpec{Epoch: 1, Mode: "strong", Groups: []RingGroup{{"g1", 1}, {"g2", 1}}}
	to := RingSpec{Epoch: 2, Mode: "strong", Groups: []RingGroup{{"g1", 1}, {"g2", 1}, {"g3", 1}}}
	w := newMoveWorld(t, from, to)
	w.all(OpMovePrepare)
	g1 := w.groups["g1"]
	stay, leave := "", ""
	for i := 0; stay == "" || leave == ""; i++ {
		k := fmt.Sprintf("k%d", i)
		switch {
		case w.owner(from, k) == "g1" && w.owner(to, k) == "g1":
			stay = k
		case w.owner(from, k) == "g1":
			leave = k
		}
	}
	if err := g1.CheckOwner([]byte(stay), 2); err != nil {
		t.Fatalf("staying key, client at epoch 2: %v", err)
	}
	if err := g1.CheckOwner([]byte(leave), 2); !errors.Is(err, ErrStaleRing) {
		t.Fatalf("leaving key, client at epoch 2: %v, want stale ring", err)
	}
	if err := w.groups["g3"].CheckOwner([]byte(leave), 2); !errors.Is(err, ErrStaleRing) {
		t.Fatalf("g3 before adopting, client at epoch 2: %v, want stale ring", err)
	}
	c := put(stay, "v")
	c.RingEpoch = 2
	mustOK(t, "put by a client of the next ring", applyNext(t, g1, c))
}

// Imports merge by version: a repeated or reordered import never takes a
// key back, and an older value never brings back a newer delete.
func TestImportsKeepTheNewestVersion(t *testing.T) {
	from := RingSpec{Epoch: 1, Mode: "strong", Groups: []RingGroup{{"g1", 1}}}
	to := RingSpec{Epoch: 2, Mode: "strong", Groups: []RingGroup{{"g1", 1}, {"g2", 1}}}
	w := newMoveWorld(t, from, to)
	w.all(OpMovePrepare)
	var key string
	for i := 0; key == ""; i++ {
		if k := fmt.Sprintf("k%d", i); w.owner(to, k) == "g2" {
			key = k
		}
	}
	g2 := w.groups["g2"]
	imp := func(recs ...ImportRecord) {
		mustOK(t, "import", applyNext(t, g2, importCmd(Import{Epoch: 2, Source: "g1", Clock: 100, Records: recs})))
	}
	imp(ImportRecord{Key: []byte(key), Version: 5, Value: []byte("v5")})
	imp(ImportRecord{Key: []byte(key), Version: 3, Value: []byte("v3")})
	if got := contents(t, g2)[key]; got != (entry{"v5", 5}) {
		t.Fatalf("after an older import: %+v", got)
	}
	imp(ImportRecord{Key: []byte(key), Version: 9, Deleted: true})
	imp(ImportRecord{Key: []byte(key), Version: 7, Value: []byte("v7")})
	if got, ok := contents(t, g2)[key]; ok {
		t.Fatalf("an older value resurrected a deleted key: %+v", got)
	}
	if st := g2.Stats(); st.Keys != 0 || st.Clock < 100 {
		t.Fatalf("stats %+v: want no keys and the clock raised to 100", st)
	}
	// A record for a key that does not move from g1 to g2 spoils the whole
	// import, and nothing of it is applied.
	var other string
	for i := 0; other == ""; i++ {
		if k := fmt.Sprintf("k%d", i); w.owner(to, k) == "g1" {
			other = k
		}
	}
	r := applyNext(t, g2, importCmd(Import{Epoch: 2, Source: "g1", Clock: 200, Records: []ImportRecord{
		{Key: []byte(key), Version: 150, Value: []byte("v150")}, {Key: []byte(other), Version: 151, Value: []byte("x")},
	}}))[0]
	if !errors.Is(r.Err, ErrInvalidCommand) || len(contents(t, g2)) != 0 || g2.Stats().Clock != 100 {
		t.Fatalf("bad import: %v, contents %v, clock %d", r.Err, contents(t, g2), g2.Stats().Clock)
	}
}

// The coordinator's record: one change at a time, phases only forward.
func TestChangeLogHoldsOneChangeAtATime(t *testing.T) {
	s := openGroup(t, "g1")
	from := RingSpec{Epoch: 1, Mode: "strong", Groups: []RingGroup{{"g1", 1}}}
	mustOK(t, "ring", applyNext(t, s, Command{Op: OpSetRing, Ring: from}))
	rec := func(phase string, to RingSpec) Command {
		body, err := json.Marshal(wire.RingChangeStatus{Kind: wire.ChangeAddGroup, Group: "g2", From: from.Wire(), To: to.Wire(), Phase: phase})
		if err != nil {
			t.Fatal(err)
		}
		return Command{Op: OpChangeLog, Body: body}
	}
	to := RingSpec{Epoch: 2, Mode: "strong", Groups: []RingGroup{{"g1", 1}, {"g2", 1}}}
	other := RingSpec{Epoch: 2, Mode: "strong", Groups: []RingGroup{{"g1", 1}, {"g3", 1}}}
	if r := applyNext(t, s, rec(wire.PhaseCopy, to))[0]; !errors.Is(r.Err, ErrMoveNotReady) {
		t.Fatalf("a change that starts past prepare: %v", r.Err)
	}
	mustOK(t, "begin", applyNext(t, s, rec(wire.PhasePrepare, to)))
	var ce *ChangeError
	if r := applyNext(t, s, rec(wire.PhasePrepare, other))[0]; !errors.As(r.Err, &ce) || ce.Active.To.Epoch != 2 {
		t.Fatalf("second change: %v, want a ChangeError naming epoch 2", r.Err)
	}
	mustOK(t, "copy", applyNext(t, s, rec(wire.PhaseCopy, to)))
	if r := applyNext(t, s, rec(wire.PhasePrepare, to))[0]; !errors.Is(r.Err, ErrMoveNotReady) {
		t.Fatalf("phase back to prepare: %v", r.Err)
	}
	mustOK(t, "done", applyNext(t, s, rec(wire.PhaseDone, to)))
	active, last, err := s.Change()
	if err != nil || active != nil || last == nil || last.Phase != wire.PhaseDone {
		t.Fatalf("after done: active %v last %v err %v", active, last, err)
	}
	// A coordinator that a change removed hands its record over.
	handed, _ := json.Marshal(wire.RingChangeStatus{Kind: wire.ChangeRemoveGroup, Group: "g0", Coordinator: "g0",
		From: RingSpec{Epoch: 7}.Wire(), To: RingSpec{Epoch: 8}.Wire(), Phase: wire.PhaseDone})
	mustOK(t, "handover", applyNext(t, s, Command{Op: OpChangeLog, Body: handed}))
	if _, last, _ := s.Change(); last == nil || last.Group != "g0" {
		t.Fatalf("handed-over record not kept: %+v", last)
	}
}

func TestImportCodecRoundTripsAndRefusesGarbage(t *testing.T) {
	im := Import{Epoch: 3, Source: "g2", Clock: 99, Seal: true, Records: []ImportRecord{
		{Key: []byte("a"), Version: 4, Value: []byte("x")}, {Key: []byte("b"), Version: 9, Deleted: true},
	}}
	got, err := DecodeImport(EncodeImport(im))
	if err != nil || fmt.Sprint(got) != fmt.Sprint(im) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	enc := EncodeImport(im)
	for i := range len(enc) {
		if _, err := DecodeImport(enc[:i]); err == nil {
			t.Fatalf("truncated at %d accepted", i)
		}
	}
	bad := im
	bad.Records = []ImportRecord{{Key: []byte("a"), Version: 100, Value: []byte("x")}}
	if _, err := DecodeImport(EncodeImport(bad)); !errors.Is(err, ErrInvalidCommand) {
		t.Fatalf("version above the clock: %v", err)
	}
}

func FuzzDecodeImport(f *testing.F) {
	f.Add(EncodeImport(Import{Epoch: 2, Source: "g1", Clock: 5, Records: []ImportRecord{{Key: []byte("k"), Version: 5, Value: []byte("v")}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := DecodeImport(b)
		if err != nil {
			return
		}
		if again, err := DecodeImport(EncodeImport(im)); err != nil || fmt.Sprint(again) != fmt.Sprint(im) {
			t.Fatalf("re-encoding changed the import: %v", err)
		}
	})
}

// BenchmarkMoveRound measures one copy round of 20,000 keys of 256 bytes:
// the source's scan and the destination's import, as one chunk each.
func BenchmarkMoveRound(b *testing.B) {
	from := RingSpec{Epoch: 1, Mode: "strong", Groups: []RingGroup{{"g1", 1}, {"g2", 1}, {"g3", 1}}}
	to := RingSpec{Epoch: 2, Mode: "strong", Groups: []RingGroup{{"g1", 1}, {"g2", 1}, {"g3", 1}, {"g4", 1}}}
	src := openGroup(b, "g1")
	mustOK(b, "ring", applyNext(b, src, Command{Op: OpSetRing, Ring: from}))
	fr, _ := from.Build()
	val := make([]byte, 256)
	var batch []Command
	for i := 0; len(batch) < 20000; i++ {
		k := fmt.Sprintf("key%08d", i)
		if fr.Owner([]byte(k)) == "g1" {
			batch = append(batch, put(k, string(val)))
		}
	}
	for i := 0; i < len(batch); i += 1000 {
		mustOK(b, "load", applyNext(b, src, batch[i:i+1000]...))
	}
	mustOK(b, "prepare", applyNext(b, src, moveCmd(OpMovePrepare, from, to)))
	b.ResetTimer()
	for range b.N {
		dst := openGroup(b, "g4")
		mustOK(b, "prepare", applyNext(b, dst, moveCmd(OpMovePrepare, from, to)))
		ch, err := src.ExportScan(2, 0, nil, 64<<20, 1<<30)
		if err != nil {
			b.Fatal(err)
		}
		recs := ch.Records["g4"]
		mustOK(b, "import", applyNext(b, dst, importCmd(Import{Epoch: 2, Source: "g1", Clock: ch.Clock, Records: recs})))
		b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	}
}
