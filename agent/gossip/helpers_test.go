package gossip

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// logSink collects records for assertions and prints them to the test's
// output until the test ends (memberlist's goroutines may still log after
// Shutdown returns, which the testing package would treat as a failure).
type logSink struct {
	mu   sync.Mutex
	out  io.Writer
	done bool
	msgs []string
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		_, _ = s.out.Write(p)
	}
	return len(p), nil
}

func (s *logSink) seen(msg string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.msgs, msg)
}

type sinkHandler struct {
	slog.Handler
	sink *logSink
}

func (h sinkHandler) Handle(ctx context.Context, r slog.Record) error {
	h.sink.mu.Lock()
	h.sink.msgs = append(h.sink.msgs, r.Message)
	h.sink.mu.Unlock()
	return h.Handler.Handle(ctx, r)
}

func (h sinkHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return sinkHandler{h.Handler.WithAttrs(as), h.sink}
}

func (h sinkHandler) WithGroup(name string) slog.Handler {
	return sinkHandler{h.Handler.WithGroup(name), h.sink}
}

// testLogger logs at info (debug with -v, memberlist included) to the
// test's output.
func testLogger(t *testing.T, name string) (*slog.Logger, *logSink) {
	sink := &logSink{out: t.Output()}
	t.Cleanup(func() {
		sink.mu.Lock()
		sink.done = true
		sink.mu.Unlock()
	})
	level := slog.LevelInfo
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	h := slog.NewTextHandler(sink, &slog.HandlerOptions{Level: level})
	return slog.New(sinkHandler{h, sink}).With("member", name), sink
}

// testMember is one started Gossip on loopback with the local profile.
type testMember struct {
	*Gossip
	logs *logSink
}

func meta(group, id string) Meta {
	return Meta{NodeID: id, Group: group, RaftAddr: "127.0.0.1:1" + id, HTTPAddr: "127.0.0.1:2" + id, Weight: 1}
}

// start starts group/id on bindAddr (default 127.0.0.1:0) joining seeds,
// and shuts it down when the test ends.
func start(t *testing.T, group, id, bindAddr string, seeds ...string) testMember {
	t.Helper()
	if bindAddr == "" {
		bindAddr = "127.0.0.1:0"
	}
	log, sink := testLogger(t, group+"/"+id)
	g, err := Start(Config{
		BindAddr:      bindAddr,
		RetryJoin:     seeds,
		RetryInterval: 200 * time.Millisecond,
		Profile:       ProfileLocal,
		Logger:        log,
	}, meta(group, id))
	if err != nil {
		t.Fatalf("start %s/%s: %v", group, id, err)
	}
	t.Cleanup(func() { _ = g.Shutdown() })
	return testMember{g, sink}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("after %v: still waiting for %s", timeout, what)
		}
	}
	return time.Since(start)
}

// member returns what g knows about name.
func member(g *Gossip, name string) (Member, bool) {
	for _, m := range g.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// hasState reports whether every observer sees name in state.
func hasState(name, state string, observers ...testMember) func() bool {
	return func() bool {
		for _, o := range observers {
			if m, ok := member(o.Gossip, name); !ok || m.State != state {
				return false
			}
		}
		return true
	}
}

// allSeeAll reports whether every member sees every other alive with the
// metadata it started with (want).
func allSeeAll(ms []testMember) func() bool {
	return func() bool {
		for _, o := range ms {
			if o.NumAlive() != len(ms) {
				return false
			}
			for _, m := range ms {
				got, ok := member(o.Gossip, m.name)
				if !ok || got.State != StateAlive || got.Meta != m.Self() {
					return false
				}
			}
		}
		return true
	}
}

// freeAddr returns a loopback address whose port is free for both TCP and
// UDP at the time of the call.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return l.Addr().String()
		}
	}
	t.Fatal("no free port for TCP and UDP")
	return ""
}

// closed reports whether ch is closed, without blocking.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func names(ms []Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s:%s", m.Name, m.State))
	}
	return out
}
