package main_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/carpkv/carpkv/internal/testcluster"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// rawStream is a KV stream spoken by hand, to check the agent's side of
// the protocol without kvclient.
type rawStream struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func openStream(t *testing.T, addr string) *rawStream {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, "GET "+wire.PathKVStream+" HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: "+wire.StreamProtocol+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != wire.StreamProtocol {
		t.Fatalf("upgrade answered %s, Upgrade %q", resp.Status, resp.Header.Get("Upgrade"))
	}
	return &rawStream{t: t, conn: conn, br: br}
}

func (s *rawStream) send(frames ...[]byte) {
	s.t.Helper()
	if _, err := s.conn.Write(bytes.Join(frames, nil)); err != nil {
		s.t.Fatal(err)
	}
}

func (s *rawStream) read() (wire.StreamResponse, error) {
	r, err := wire.ReadResponse(s.br, 1<<20)
	return r, err
}

// answers reads n answers, by request ID.
func (s *rawStream) answers(n int) map[uint64]wire.StreamResponse {
	s.t.Helper()
	got := make(map[uint64]wire.StreamResponse, n)
	for range n {
		r, err := s.read()
		if err != nil {
			s.t.Fatalf("after %d answers: %v", len(got), err)
		}
		if _, dup := got[r.ID]; dup {
			s.t.Fatalf("request %d answered twice", r.ID)
		}
		got[r.ID] = r
	}
	return got
}

func req(r wire.StreamRequest) []byte { return wire.AppendRequest(nil, &r) }

// TestKVStreamServesTheKVAPIWithItsErrorCodes sends every kind of request,
// good and bad, down one stream at once: each gets the answer the HTTP
// API gives, matched by its ID, and a bad one does not break the stream.
func TestKVStreamServesTheKVAPIWithItsErrorCodes(t *testing.T) {
	c := testcluster.Start(t, "g1", 3, "--max-key-bytes=64", "--max-value-bytes=1024", "--max-body-bytes=2048")
	c.DumpLogsOnFailure()
	leader := c.Leader(10 * time.Second)
	follower := c.Follower(leader)
	s := openStream(t, leader.HTTPAddr)

	// A key to read and to compare against.
	s.send(req(wire.StreamRequest{ID: 1, Op: wire.StreamPut, Key: []byte("present"), Value: []byte("v1")}))
	first := s.answers(1)[1]
	if first.Err != nil || first.Version == 0 || first.Index == 0 {
		t.Fatalf("put: %+v", first)
	}
	ver := first.Version

	unknownOp := req(wire.StreamRequest{ID: 10, Op: wire.StreamGet, Key: []byte("k")})
	unknownOp[4+8] = 9
	cases := []struct {
		frame []byte
		want  wire.Code // "" for success
		check func(r wire.StreamResponse) string
	}{
		{req(wire.StreamRequest{ID: 2, Op: wire.StreamGet, Key: []byte("present")}), "", func(r wire.StreamResponse) string {
			if string(r.Value) != "v1" || r.Version != ver {
				return "get of present"
			}
			return ""
		}},
		{req(wire.StreamRequest{ID: 3, Op: wire.StreamPut, Key: []byte("binary\x00/%\xff"), Value: bytes.Repeat([]byte{0, 0xff}, 512)}), "", nil},
		{req(wire.StreamRequest{ID: 4, Op: wire.StreamGet, Key: []byte("absent")}), wire.CodeNotFound, nil},
		{req(wire.StreamRequest{ID: 5, Op: wire.StreamDelete, Key: []byte("absent")}), wire.CodeNotFound, nil},
		{req(wire.StreamRequest{ID: 6, Op: wire.StreamPut, Flags: wire.FlagCAS, Expect: 0, Key: []byte("present"), Value: []byte("x")}), wire.CodeCASFailed, func(r wire.StreamResponse) string {
			if r.Err.Version != ver {
				return "cas_failed without the current version"
			}
			return ""
		}},
		{req(wire.StreamRequest{ID: 7, Op: wire.StreamDelete, Flags: wire.FlagCAS, Expect: ver + 10, Key: []byte("present")}), wire.CodeCASFailed, nil},
		{req(wire.StreamRequest{ID: 8, Op: wire.StreamGet}), wire.CodeInvalidArgument, nil},
		{req(wire.StreamRequest{ID: 9, Op: wire.StreamGet, Key: bytes.Repeat([]byte("k"), 65)}), wire.CodeTooLarge, nil},
		{unknownOp, wire.CodeInvalidArgument, nil},
		// Over the frame limit (key + value limits): answered, skipped, and
		// the stream stays in step for the requests after it.
		{req(wire.StreamRequest{ID: 11, Op: wire.StreamPut, Key: []byte("big"), Value: make([]byte, 4096)}), wire.CodeTooLarge, nil},
		// Within the frame limit thanks to a short key, but over the value limit.
		{req(wire.StreamRequest{ID: 12, Op: wire.StreamPut, Key: []byte("b"), Value: make([]byte, 1025)}), wire.CodeTooLarge, nil},
		{req(wire.StreamRequest{ID: 13, Op: wire.StreamDelete, Key: []byte("present"), Value: []byte("x")}), wire.CodeInvalidArgument, nil},
		{req(wire.StreamRequest{ID: 14, Op: wire.StreamGet, Key: []byte("present"), RingEpoch: 99}), wire.CodeStaleRing, nil},
		{req(wire.StreamRequest{ID: 15, Op: wire.StreamGet, Key: []byte("present")}), "", nil},
	}
	var frames [][]byte
	for _, tc := range cases {
		frames = append(frames, tc.frame)
	}
	s.send(frames...)
	got := s.answers(len(cases))
	for i, tc := range cases {
		id := uint64(i + 2)
		r, ok := got[id]
		switch {
		case !ok:
			t.Errorf("request %d: no answer", id)
		case tc.want == "" && r.Err != nil:
			t.Errorf("request %d: %v, want success", id, r.Err)
		case tc.want != "" && (r.Err == nil || r.Err.Code != tc.want):
			t.Errorf("request %d: %+v, want %s", id, r, tc.want)
		case tc.check != nil:
			if msg := tc.check(r); msg != "" {
				t.Errorf("request %d: %s: %+v", id, msg, r)
			}
		}
	}

	// Nothing refused was stored.
	s.send(req(wire.StreamRequest{ID: 20, Op: wire.StreamGet, Key: []byte("big")}),
		req(wire.StreamRequest{ID: 21, Op: wire.StreamGet, Key: []byte("b")}),
		req(wire.StreamRequest{ID: 22, Op: wire.StreamGet, Key: []byte("present")}))
	after := s.answers(3)
	for _, id := range []uint64{20, 21} {
		if e := after[id].Err; e == nil || e.Code != wire.CodeNotFound {
			t.Errorf("request %d: an oversized value was stored: %+v", id, after[id])
		}
	}
	if r := after[22]; r.Err != nil || string(r.Value) != "v1" || r.Version != ver {
		t.Errorf("present after the bad requests: %+v", r)
	}

	// A follower: writes and linearizable reads name the leader; stale
	// reads are served.
	f := openStream(t, follower.HTTPAddr)
	f.send(req(wire.StreamRequest{ID: 1, Op: wire.StreamPut, Key: []byte("k"), Value: []byte("v")}),
		req(wire.StreamRequest{ID: 2, Op: wire.StreamGet, Key: []byte("present")}))
	fa := f.answers(2)
	for id, r := range fa {
		if r.Err == nil || r.Err.Code != wire.CodeNotLeader || r.Err.Leader == nil || r.Err.Leader.HTTP != leader.HTTPAddr {
			t.Errorf("follower, request %d: %+v, want not_leader naming %s", id, r.Err, leader.HTTPAddr)
		}
	}
	testcluster.Eventually(t, 10*time.Second, "a stale read on the follower sees the write", func() error {
		f.send(req(wire.StreamRequest{ID: 3, Op: wire.StreamGet, Flags: wire.FlagStale, Key: []byte("present")}))
		r := f.answers(1)[3]
		if r.Err != nil || string(r.Value) != "v1" {
			return errors.New("not yet")
		}
		return nil
	})
}

// TestKVStreamUpgradeNeedsItsHeaders: a plain GET of the stream endpoint
// is a clear error, not a hijacked connection.
func TestKVStreamUpgradeNeedsItsHeaders(t *testing.T) {
	c := testcluster.Start(t, "g1", 1)
	c.DumpLogsOnFailure()
	n := c.Leader(10 * time.Second)
	a := do(t, "GET", "http://"+n.HTTPAddr+wire.PathKVStream, nil)
	if a.err == nil || a.err.Code != wire.CodeInvalidArgument || !strings.Contains(a.err.Message, wire.StreamProtocol) {
		t.Fatalf("got HTTP %d %s, want invalid_argument naming the protocol", a.status, a.body)
	}
}

// TestKVStreamEndsCleanlyWhenTheAgentStops: an agent told to stop answers
// what it has taken, refuses more with unavailable (nothing applied, so a
// client may retry elsewhere), and closes the stream; it never leaves a
// client hanging.
func TestKVStreamEndsCleanlyWhenTheAgentStops(t *testing.T) {
	c := testcluster.Start(t, "g1", 1)
	c.DumpLogsOnFailure()
	n := c.Leader(10 * time.Second)
	s := openStream(t, n.HTTPAddr)
	s.send(req(wire.StreamRequest{ID: 1, Op: wire.StreamPut, Key: []byte("k"), Value: []byte("v")}))
	if r := s.answers(1)[1]; r.Err != nil {
		t.Fatalf("put: %v", r.Err)
	}

	// Stop waits for the process to exit: the requests go out meanwhile,
	// one at a time until the stream ends; each must be answered, or the
	// stream closed, within the connection's deadline.
	stopped := make(chan struct{})
	go func() { defer close(stopped); n.Stop() }()
	var ok, refused int
	for id := uint64(2); ; id++ {
		if _, err := s.conn.Write(req(wire.StreamRequest{ID: id, Op: wire.StreamGet, Flags: wire.FlagStale, Key: []byte("k")})); err != nil {
			break
		}
		r, err := s.read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the stream hung after the agent was told to stop (%d ok, %d refused)", ok, refused)
			}
			break
		}
		switch {
		case r.Err == nil:
			ok++
		case r.Err.Code == wire.CodeUnavailable:
			refused++
		default:
			t.Fatalf("while stopping: %v, want success or unavailable", r.Err)
		}
	}
	<-stopped
	t.Logf("%d reads answered, %d refused while stopping", ok, refused)
}

// A liveness ping is answered by the connection's reader at once, even
// while the requests before it wait on a Raft group that cannot commit:
// only a frozen or cut-off agent leaves a ping unanswered (kvclient's
// Config.LivenessTimeout).
func TestKVStreamPingIsAnsweredWhileRaftCannotCommit(t *testing.T) {
	c := testcluster.Start(t, "g1", 3)
	c.DumpLogsOnFailure()
	leader := c.Leader(10 * time.Second)
	s := openStream(t, leader.HTTPAddr)
	for _, n := range c.Running() {
		if n != leader {
			n.Stop() // returns when the process has exited
		}
	}
	// A write that cannot commit (no quorum), then a ping behind it.
	s.send(
		req(wire.StreamRequest{ID: 1, Op: wire.StreamPut, TimeoutUS: 60e6, Key: []byte("k"), Value: []byte("v")}),
		req(wire.StreamRequest{ID: 2, Op: wire.StreamPing}),
	)
	r, err := s.read()
	if err != nil {
		t.Fatalf("no answer to the ping: %v", err)
	}
	if r.ID != 2 || r.Err != nil || len(r.Value) != 0 {
		t.Fatalf("first answer %+v, want the ping's (ID 2), ok and empty", r)
	}
}
