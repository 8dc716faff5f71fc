package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestReopenKeepsDataAndAppliedIndex(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Group: testGroup}) // fsync on, as in production
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, "k", 100)
	applyNext(t, s, del("k0000"), ringCmd(7),
		Command{Op: OpRegisterNode, Node: NodeInfo{ID: "n1", RaftAddr: "r", HTTPAddr: "h"}},
		Command{Op: OpRemoveNode, Node: NodeInfo{ID: "n0"}})
	want, wantStats := contents(t, s), s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := s.Get([]byte("k0001")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}

	s2, err := Open(dir, Options{Group: testGroup})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := contents(t, s2); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatal("contents differ after reopen")
	}
	if st := s2.Stats(); st != wantStats || st.AppliedIndex != 104 || st.Keys != 99 || st.Epoch != 7 {
		t.Fatalf("stats after reopen %+v, want %+v", st, wantStats)
	}
	if s2.AppliedIndex() != 104 {
		t.Fatalf("AppliedIndex %d, want 104", s2.AppliedIndex())
	}
	if _, ok := s2.Node("n1"); !ok || !s2.IsRemoved("n0") {
		t.Fatal("registry lost on reopen")
	}
	// The clock survives too: the next write continues it.
	if r := applyNext(t, s2, put("new", "v"))[0]; r.Version != wantStats.Clock+1 {
		t.Fatalf("version after reopen %d, want %d", r.Version, wantStats.Clock+1)
	}
}

func TestOpen(t *testing.T) {
	t.Run("rejects negative mmap size", func(t *testing.T) {
		if _, err := Open(t.TempDir(), Options{InitialMmapSize: -1}); err == nil {
			t.Fatal("Open accepted a negative InitialMmapSize")
		}
	})
	t.Run("refuses a bbolt file of another program", func(t *testing.T) {
		dir := t.TempDir()
		db, err := bolt.Open(filepath.Join(dir, dbFile), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return err
			}
			return b.Put([]byte("something"), []byte("else"))
		}); err != nil {
			t.Fatal(err)
		}
		_ = db.Close()
		if s, err := Open(dir, Options{NoSync: true, Group: testGroup}); err == nil {
			_ = s.Close()
			t.Fatal("Open accepted a foreign meta bucket")
		}
	})
	t.Run("removes interrupted restores", func(t *testing.T) {
		dir := t.TempDir()
		leftover := filepath.Join(dir, restorePrefix+"123")
		if err := os.WriteFile(leftover, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		openStore(t, dir)
		if _, err := os.Stat(leftover); !os.IsNotExist(err) {
			t.Fatalf("leftover still there: %v", err)
		}
	})
	t.Run("second open of the same dir fails", func(t *testing.T) {
		dir := t.TempDir()
		openStore(t, dir)
		if s, err := Open(dir, Options{NoSync: true, Group: testGroup}); err == nil {
			_ = s.Close()
			t.Fatal("two stores opened the same directory")
		}
	})
}

func TestStatsTracksKeysAndBytes(t *testing.T) {
	s := openStore(t, t.TempDir())
	applyNext(t, s, put("aa", "1234"), put("b", ""), put("aa", "12"), del("b"), put("c", "xyz"))
	st := s.Stats()
	want := Stats{Keys: 2, DataBytes: int64(len("aa12") + len("cxyz")), AppliedIndex: 5, Clock: 5}
	if st.Bytes <= 0 {
		t.Fatalf("Bytes = %d, want the database size", st.Bytes)
	}
	st.Bytes = 0
	if st != want {
		t.Fatalf("Stats = %+v, want %+v", st, want)
	}
}

func TestWaitApplied(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Many waiters for different indexes; each must return once its index
	// is applied, not before.
	const waiters = 50
	done := make(chan uint64, waiters)
	errs := make(chan error, waiters)
	for i := range waiters {
		want := uint64(i%5 + 1)
		go func() {
			if err := s.WaitApplied(ctx, want); err != nil {
				errs <- err
				return
			}
			if got := s.AppliedIndex(); got < want {
				errs <- fmt.Errorf("woke at %d waiting for %d", got, want)
				return
			}
			done <- want
		}()
	}
	for range 5 {
		applyNext(t, s, put("k", "v"))
	}
	for range waiters {
		select {
		case <-done:
		case err := <-errs:
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatal("waiters not woken")
		}
	}

	if err := s.WaitApplied(ctx, 3); err != nil {
		t.Fatalf("WaitApplied on a reached index: %v", err)
	}

	short, cancelShort := context.WithCancel(ctx)
	res := make(chan error, 1)
	go func() { res <- s.WaitApplied(short, 100) }()
	cancelShort()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitApplied after cancel: %v, want context.Canceled", err)
	}

	go func() { res <- s.WaitApplied(ctx, 100) }()
	_ = s.Close()
	if err := <-res; !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitApplied across Close: %v, want ErrClosed", err)
	}
}

// Readers run while batches commit: every read succeeds, and per key the
// versions a reader sees never go back, even across delete and re-create.
func TestConcurrentGetsDuringApplyBatch(t *testing.T) {
	s := openStore(t, t.TempDir())
	const keys = 16
	var stop atomic.Bool
	started := make(chan struct{}, 4)
	reader := func() {
		var last [keys]uint64
		first := true
		for !stop.Load() {
			for k := range keys {
				_, v, err := s.Get(fmt.Appendf(nil, "k%d", k))
				if errors.Is(err, ErrNotFound) {
					continue // deleted; a re-create must still show a higher version
				}
				if err != nil {
					t.Errorf("Get: %v", err)
					return
				}
				if v < last[k] {
					t.Errorf("key %d went from version %d back to %d", k, last[k], v)
					return
				}
				last[k] = v
			}
			if st := s.Stats(); st.Clock == 0 && st.AppliedIndex > 0 {
				t.Errorf("Stats = %+v", st)
				return
			}
			if first {
				started <- struct{}{}
				first = false
			}
		}
	}
	wait := runAll(reader, reader, reader, reader)
	for range 4 {
		<-started
	}
	for i := range 200 {
		cmds := make([]Command, 8)
		for j := range cmds {
			cmds[j] = put(fmt.Sprintf("k%d", (i*8+j)%keys), "v")
		}
		if i%10 == 9 {
			cmds[0] = del(fmt.Sprintf("k%d", i%keys))
		}
		applyNext(t, s, cmds...)
	}
	stop.Store(true)
	wait()
}
