package gossip

import (
	"errors"
	"strings"
	"testing"
)

func TestMetaRoundTripsAndToleratesNewerPeers(t *testing.T) {
	m := Meta{NodeID: "n1", Group: "g1", RaftAddr: "10.0.0.1:7000", HTTPAddr: "10.0.0.1:8080",
		Weight: 1.5, Leader: "n2", RingEpoch: 7, HasState: true}
	for _, leaving := range []bool{false, true} {
		b, err := encodeMeta(m, leaving)
		if err != nil {
			t.Fatal(err)
		}
		if got, l, err := decodeMeta(b); err != nil || got != m || l != leaving {
			t.Fatalf("decode(encode(m, %v)) = %+v, %v, %v; want %+v", leaving, got, l, err, m)
		}
	}
	got, _, err := decodeMeta([]byte(`{"id":"n1","g":"g1","future":{"x":1}}`))
	if err != nil || got.NodeID != "n1" || got.Group != "g1" {
		t.Fatalf("decode with unknown field = %+v, %v", got, err)
	}
	if _, _, err := decodeMeta([]byte("not json")); err == nil {
		t.Fatal("decode of garbage succeeded")
	}
}

func TestOversizedMetaIsRejected(t *testing.T) {
	m := meta("g1", "a")
	m.Leader = strings.Repeat("x", MaxMetaBytes)
	if _, err := encodeMeta(m, false); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("encodeMeta = %v, want ErrMetaTooLarge", err)
	}
	if _, err := Start(Config{BindAddr: "127.0.0.1:0"}, m); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("Start = %v, want ErrMetaTooLarge", err)
	}
	// The largest accepted Meta still fits memberlist's limit with the
	// leave intent added.
	m.Leader = ""
	b, _ := encodeMeta(m, false)
	m.Leader = strings.Repeat("x", MaxMetaBytes-len(b)-len(`,"l":""`))
	if b, err := encodeMeta(m, false); err != nil || len(b) != MaxMetaBytes {
		t.Fatalf("largest Meta: %d bytes, %v; want %d", len(b), err, MaxMetaBytes)
	}
	if _, err := encodeMeta(m, true); err != nil {
		t.Fatalf("largest Meta with leave intent: %v", err)
	}
}

func TestStartRejectsAmbiguousIdentity(t *testing.T) {
	for _, m := range []Meta{{Group: "g1"}, {NodeID: "a"}, {NodeID: "a/b", Group: "g1"}, {NodeID: "b", Group: "g1/a"}} {
		if _, err := Start(Config{BindAddr: "127.0.0.1:0"}, m); err == nil {
			t.Errorf("Start(%+v) succeeded", m)
		}
	}
}

func TestSplitMemberlistLine(t *testing.T) {
	tests := []struct{ line, level, msg string }{
		{"[WARN] memberlist: Refuting a suspect message (from: g1/b)\n", "WARN", "Refuting a suspect message (from: g1/b)"},
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:5\n", "DEBUG", "Stream connection from=127.0.0.1:5"},
		{"[ERR] Failed to shutdown transport: x\n", "ERR", "Failed to shutdown transport: x"},
		{"no level here\n", "", "no level here"},
		{"[not a level] x", "", "[not a level] x"},
	}
	for _, tt := range tests {
		level, msg := splitMemberlistLine(tt.line)
		if level != tt.level || msg != tt.msg {
			t.Errorf("split(%q) = %q, %q; want %q, %q", tt.line, level, msg, tt.level, tt.msg)
		}
	}
}
