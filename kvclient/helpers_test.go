package kvclient_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/fakeagent"
	"github.com/carpkv/carpkv/kvclient/wire"
)

func newGroup(t *testing.T, n int) *fakeagent.Group {
	t.Helper()
	g := fakeagent.NewGroup(n)
	t.Cleanup(g.Close)
	return g
}

// fastConfig keeps backoffs short so retry tests run quickly.
func fastConfig(addrs ...string) kvclient.Config {
	return kvclient.Config{Addrs: addrs, BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond}
}

// newClient builds a Client for fakeagent, which speaks HTTP only: the
// tests here pin HTTP's semantics (stream_test.go covers the KV stream),
// so Transport defaults to HTTP rather than to the stream and its
// fallback.
func newClient(t *testing.T, cfg kvclient.Config) *kvclient.Client {
	t.Helper()
	if cfg.Transport == "" {
		cfg.Transport = kvclient.TransportHTTP
	}
	c, err := kvclient.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// deadAddr is an address that refuses connections.
var deadAddr = fakeagent.DeadAddr

// dropConn closes the client's connection without an answer.
func dropConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// answer answers every request with code.
func answer(code wire.Code) fakeagent.Hook {
	return func(w http.ResponseWriter, r *http.Request) bool {
		fakeagent.WriteError(w, &wire.Error{Code: code, Message: "injected"})
		return true
	}
}

// drop drops every request's connection unanswered.
func drop(w http.ResponseWriter, r *http.Request) bool {
	dropConn(w)
	return true
}

// applyThenDrop serves the request normally, then drops the connection
// instead of answering: the write is applied, the client cannot know.
func applyThenDrop(a *fakeagent.Agent) fakeagent.Hook {
	return func(w http.ResponseWriter, r *http.Request) bool {
		a.Serve(discard{}, r)
		dropConn(w)
		return true
	}
}

// hang never answers; it returns when the client goes away.
func hang(g *fakeagent.Group) fakeagent.Hook {
	return func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-r.Context().Done():
		case <-g.Done():
		}
		return true
	}
}

// firstN applies h to the first n requests, then lets them through.
func firstN(n int64, h fakeagent.Hook) fakeagent.Hook {
	var seen atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) bool {
		if seen.Add(1) <= n {
			return h(w, r)
		}
		return false
	}
}

// onlyMethod applies h to requests of one method.
func onlyMethod(method string, h fakeagent.Hook) fakeagent.Hook {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != method {
			return false
		}
		return h(w, r)
	}
}

// writeJSONBody answers 200 with v as JSON.
func writeJSONBody(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

func totalRequests(g *fakeagent.Group) int64 {
	var n int64
	for _, a := range g.Agents() {
		n += a.Requests()
	}
	return n
}
