package store

import (
	"os"
	"path/filepath"
	"testing"
)

// These tests open stores with the production options (no NoSync), so
// Close syncs and writes the clean marker, and a "crash" is a close of the
// database without either.

// setBoot makes id the current boot ID; "" makes it unreadable.
func setBoot(t *testing.T, id string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "boot_id")
	if id != "" {
		if err := os.WriteFile(p, []byte(id+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := BootIDPath
	BootIDPath = p
	t.Cleanup(func() { BootIDPath = old })
}

func openProd(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{Group: testGroup})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// crash stops s the way a kill -9 does: the database and the directory
// lock are released without a sync and without the clean marker.
func crash(t *testing.T, s *Store) {
	t.Helper()
	s.mu.Lock()
	db := s.db
	s.db, s.closed = nil, true
	s.mu.Unlock()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s.lock.Close()
}

func writeSome(t *testing.T, s *Store) uint64 {
	t.Helper()
	for i := range 20 {
		applyNext(t, s, put("k"+string(rune('a'+i)), "v"))
	}
	return s.AppliedIndex()
}

func TestCleanCloseIsTrustedAfterAMachineRestart(t *testing.T) {
	dir := t.TempDir()
	setBoot(t, "boot-1")
	s := openProd(t, dir)
	applied := writeSome(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, cleanFile)); err != nil {
		t.Fatalf("no clean marker after Close: %v", err)
	}
	setBoot(t, "boot-2")
	s = openProd(t, dir)
	defer s.Close()
	if s.AppliedIndex() != applied || s.Stats().Keys != 20 {
		t.Fatalf("after a clean close and a restart: applied %d keys %d, want %d and 20", s.AppliedIndex(), s.Stats().Keys, applied)
	}
	if _, err := os.Stat(filepath.Join(dir, cleanFile)); !os.IsNotExist(err) {
		t.Fatalf("clean marker still there while the store is open: %v", err)
	}
}

func TestProcessCrashIsTrustedOnTheSameBoot(t *testing.T) {
	dir := t.TempDir()
	setBoot(t, "boot-1")
	s := openProd(t, dir)
	applied := writeSome(t, s)
	crash(t, s)
	s = openProd(t, dir)
	defer s.Close()
	if s.AppliedIndex() != applied || s.Stats().Keys != 20 {
		t.Fatalf("after a crash on the same boot: applied %d keys %d, want %d and 20", s.AppliedIndex(), s.Stats().Keys, applied)
	}
}

func TestMachineRestartWhileOpenDiscardsTheFile(t *testing.T) {
	dir := t.TempDir()
	setBoot(t, "boot-1")
	s := openProd(t, dir)
	writeSome(t, s)
	crash(t, s)
	setBoot(t, "boot-2")
	s = openProd(t, dir)
	if s.AppliedIndex() != 0 || s.Stats().Keys != 0 {
		t.Fatalf("after a machine restart with the store open: applied %d keys %d, want an empty store for Raft to rebuild", s.AppliedIndex(), s.Stats().Keys)
	}
	// The rebuilt store works and is trusted from then on.
	applied := writeSome(t, s)
	crash(t, s)
	s = openProd(t, dir)
	defer s.Close()
	if s.AppliedIndex() != applied {
		t.Fatalf("rebuilt store after a crash on the same boot: applied %d, want %d", s.AppliedIndex(), applied)
	}
}

func TestUnknownBootIsNeverTrustedAfterACrash(t *testing.T) {
	dir := t.TempDir()
	setBoot(t, "")
	s := openProd(t, dir)
	writeSome(t, s)
	crash(t, s)
	s = openProd(t, dir)
	defer s.Close()
	if s.Stats().Keys != 0 {
		t.Fatalf("without a boot ID a crashed store was trusted (%d keys)", s.Stats().Keys)
	}
}

func TestFileOfAnOlderCarpkvIsTrusted(t *testing.T) {
	// Before durability.go every commit was fsynced and no marker files
	// existed: such a file is complete.
	dir := t.TempDir()
	setBoot(t, "boot-1")
	s := openProd(t, dir)
	applied := writeSome(t, s)
	crash(t, s)
	for _, f := range []string{bootFile, cleanFile} {
		_ = os.Remove(filepath.Join(dir, f))
	}
	setBoot(t, "boot-2")
	s = openProd(t, dir)
	defer s.Close()
	if s.AppliedIndex() != applied {
		t.Fatalf("file without markers: applied %d, want %d", s.AppliedIndex(), applied)
	}
}

func TestSecondOpenDoesNotTouchALiveStore(t *testing.T) {
	dir := t.TempDir()
	setBoot(t, "boot-1")
	s := openProd(t, dir)
	defer s.Close()
	writeSome(t, s)
	setBoot(t, "boot-2") // would make the second Open discard the file
	if s2, err := Open(dir, Options{Group: testGroup}); err == nil {
		_ = s2.Close()
		t.Fatal("a second store opened a live directory")
	}
	if s.Stats().Keys != 20 {
		t.Fatalf("live store lost keys: %d", s.Stats().Keys)
	}
	if _, err := os.Stat(s.path); err != nil {
		t.Fatalf("live database file gone: %v", err)
	}
}
