package node

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// A follower drops a suffix of its log when a new leader's log differs
// (raft: "clearing log suffix"), then restarts. raft-wal v0.4.0 marked the
// tail segment sealed without writing its index block, and the next open
// could not read the log ("sealed segment has no index block",
// hashicorp/raft-wal#31, fixed in v0.4.1): the agent panicked at start.
func TestLogStoreReopensAfterASuffixWasDropped(t *testing.T) {
	for _, kind := range []string{"wal", "bolt"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			open := func() raftStore {
				s, err := openRaftStore(dir, kind, hclog.NewNullLogger(), slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			s := open()
			var logs []*raft.Log
			for i := uint64(1); i <= 10; i++ {
				logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte(fmt.Sprint("entry ", i))})
			}
			if err := s.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteRange(8, 10); err != nil { // the suffix
				t.Fatal(err)
			}
			if err := s.StoreLog(&raft.Log{Index: 8, Term: 2, Type: raft.LogCommand, Data: []byte("new 8")}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open()
			defer s.Close()
			for i := uint64(1); i <= 8; i++ {
				var l raft.Log
				if err := s.GetLog(i, &l); err != nil {
					t.Fatalf("after reopening, entry %d: %v", i, err)
				}
				if want := map[bool]string{true: "new 8", false: fmt.Sprint("entry ", i)}[i == 8]; string(l.Data) != want {
					t.Fatalf("entry %d = %q, want %q", i, l.Data, want)
				}
			}
			if last, err := s.LastIndex(); err != nil || last != 8 {
				t.Fatalf("last index %d (%v), want 8", last, err)
			}
		})
	}
}

func TestLogStoreRefusesTheOtherKind(t *testing.T) {
	dir := t.TempDir()
	quiet, log := hclog.NewNullLogger(), slog.New(slog.DiscardHandler)
	s, err := openRaftStore(dir, "bolt", quiet, log)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = openRaftStore(dir, "wal", quiet, log)
	if !errors.Is(err, ErrLogStoreMismatch) || !strings.Contains(err.Error(), "raft.db") {
		t.Fatalf("wal over a bolt log: %v", err)
	}
	if _, err := openRaftStore(dir, "zip", quiet, log); err == nil {
		t.Fatal("an unknown kind was accepted")
	}
}
