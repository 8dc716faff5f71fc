package kvclient

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// Client is a carpkv client. It is safe for concurrent use; share one.
type Client struct {
	cfg    Config
	http   *http.Client
	owned  *http.Transport // the transport New built, closed by Close; nil if given
	traced bool            // http's transport reports connection and write events
	// streams carries KV calls (stream.go); nil with Transport "http".
	streams *streams
	log     *slog.Logger

	// group is the seeds' group: management calls (Configuration, Join,
	// Remove, TransferLeadership) go to it.
	group *groupClient

	// rt is the ring keys are routed by (ring.go): nil until the first
	// call fetches it, then swapped whole by refreshes. rmu serialises
	// installs and guards fetching, the fetch in flight.
	rt       atomic.Pointer[routing]
	rmu      sync.Mutex
	fetching *ringFetch
	rr       atomic.Uint32 // rotates refresh candidates

	// lastBgRefresh is when refreshInBackground last started a fetch
	// (Unix nanoseconds).
	lastBgRefresh atomic.Int64

	// silent maps an agent address to a silence (group.go): until when
	// calls do not start at it, since it left a request or a liveness
	// ping unanswered.
	silent sync.Map

	closed atomic.Bool
	done   chan struct{} // closed by Close: cuts backoffs short
}

// New returns a Client for cfg (zero fields take their defaults). It does
// not contact any agent.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg, log: cfg.Logger, done: make(chan struct{})}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient != nil {
		c.http = cfg.HTTPClient
		switch cfg.HTTPClient.Transport.(type) {
		case nil, *http.Transport:
			c.traced = true
		}
	} else {
		c.owned = newTransport(cfg)
		c.http = &http.Client{
			Transport: c.owned,
			// Never follow a redirect: it would resend a write on the
			// client's own authority. Agents answer not_leader instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		c.traced = true
	}
	if cfg.Transport != TransportHTTP {
		c.streams = &streams{c: c}
	}
	c.group = newGroupClient(c, "", cfg.Addrs)
	return c, nil
}

// newTransport is tuned for a few agents and many concurrent callers:
// enough idle connections per agent that 64+ callers reuse them instead
// of churning, keep-alives, no proxy (agents are addressed directly), and
// plain HTTP/1.1.
func newTransport(cfg Config) *http.Transport {
	return &http.Transport{
		DialContext: (&net.Dialer{
			Timeout:   cfg.DialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:        cfg.MaxIdleConnsPerHost * 8,
		MaxIdleConnsPerHost: cfg.MaxIdleConnsPerHost,
		// Shorter than usual server idle timeouts, so the client rarely
		// reuses a connection the agent is closing: a write sent on one
		// would end with an unknown outcome.
		IdleConnTimeout:   30 * time.Second,
		ForceAttemptHTTP2: false,
	}
}

// Close releases the Client's idle connections and makes further calls
// fail with ErrClosed. Calls in flight finish; their backoffs end early.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	close(c.done)
	if c.owned != nil {
		c.owned.CloseIdleConnections()
	}
	if c.streams != nil {
		c.streams.close()
	}
	return nil
}

// Addrs returns the configured agent addresses, normalised.
func (c *Client) Addrs() []string { return append([]string(nil), c.cfg.Addrs...) }

// Leader returns the HTTP address of the leader the Client last talked to
// in a standalone group (ring epoch 0), or in the seeds' group when it
// routes across several groups (see Owner for a key's group); "" if it
// knows none.
func (c *Client) Leader() string {
	if rt := c.rt.Load(); rt != nil && rt.single != nil {
		if l := rt.single.cachedLeader(); l != "" {
			return l
		}
	}
	return c.group.cachedLeader()
}

// sleep waits d, or until ctx ends or the Client is closed.
func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return ErrClosed
	}
}

// Value is a key's value and version.
type Value struct {
	Data    []byte
	Version uint64 // grows with every write of the key, never reused
}

// ReadOption changes how Get reads.
type ReadOption func(*readOptions)

type readOptions struct {
	stale bool
}

// Stale lets Get read any member's local state: faster, spread over the
// group and served without a leader, but it may miss recent writes. Without
// it reads are linearizable.
func Stale() ReadOption { return func(o *readOptions) { o.stale = true } }

// kvCall is a KV operation, described once as a stream request; its HTTP
// form is derived from that only if an attempt goes over HTTP (httpForm).
func kvCall(op string, req wire.StreamRequest) *call {
	return &call{op: fmt.Sprintf("%s %q", op, req.Key), stream: &req, route: routeLeader}
}

// withExpect makes req conditional on the key's version being *expect
// (nil: unconditional).
func withExpect(req wire.StreamRequest, expect *uint64) wire.StreamRequest {
	if expect != nil {
		req.Flags |= wire.FlagCAS
		req.Expect = *expect
	}
	return req
}

// httpForm sets a KV call's HTTP request from its stream request: the
// operation as a method, the key as an escaped path, the flags as query
// parameters (docs/api.md).
func (cl *call) httpForm() {
	r := cl.stream
	key := string(r.Key)
	cl.path, cl.rawPath = wire.KVPrefix+key, wire.KVPrefix+url.PathEscape(key)
	cl.query = url.Values{}
	switch r.Op {
	case wire.StreamGet:
		cl.method = http.MethodGet
	case wire.StreamPut:
		cl.method, cl.body = http.MethodPut, r.Value
		if cl.body == nil {
			cl.body = []byte{}
		}
	case wire.StreamDelete:
		cl.method = http.MethodDelete
	}
	if r.Flags&wire.FlagStale != 0 {
		cl.query.Set(wire.QueryStale, "true")
	}
	if r.Flags&wire.FlagCAS != 0 {
		cl.query.Set(wire.QueryCAS, wire.FormatUint(r.Expect))
	}
}

func checkKey(op string, key []byte) error {
	if len(key) == 0 {
		return invalidArgf("kvclient: %s: empty key", op)
	}
	return nil
}

// Get reads key. It fails with ErrNotFound if the key is absent.
func (c *Client) Get(ctx context.Context, key []byte, opts ...ReadOption) (Value, error) {
	var o readOptions
	for _, opt := range opts {
		opt(&o)
	}
	v, _, err := c.get(ctx, key, o)
	return v, err
}

// get reads key and says which group answered (or was tried last).
func (c *Client) get(ctx context.Context, key []byte, o readOptions) (Value, string, error) {
	if err := checkKey("get", key); err != nil {
		return Value{}, "", err
	}
	req := wire.StreamRequest{Op: wire.StreamGet, Key: key}
	if o.stale {
		req.Flags |= wire.FlagStale
	}
	cl := kvCall("get", req)
	cl.idempotent = true
	if o.stale {
		cl.route = routeAny
	}
	rep, group, err := c.route(ctx, key, cl)
	if err != nil {
		return Value{}, group, err
	}
	if rep.streamed {
		return Value{Data: rep.body, Version: rep.version}, group, nil
	}
	ver, err := wire.ParseUint(rep.header.Get(wire.HeaderVersion))
	if err != nil {
		return Value{}, group, protocolError(cl, rep.addr, "bad %s header: %v", wire.HeaderVersion, err)
	}
	return Value{Data: rep.body, Version: ver}, group, nil
}

// Put writes value under key and returns the new version.
// ErrTimeout: the write may or may not have been applied.
func (c *Client) Put(ctx context.Context, key, value []byte) (uint64, error) {
	v, _, err := c.put(ctx, "put", key, value, nil)
	return v, err
}

// PutIfAbsent writes value only if key is absent, and returns the new
// version. If the key exists the error is a *CASError (ErrCASFailed) with
// its current version. ErrTimeout: the outcome is unknown.
func (c *Client) PutIfAbsent(ctx context.Context, key, value []byte) (uint64, error) {
	var zero uint64
	v, _, err := c.put(ctx, "put-if-absent", key, value, &zero)
	return v, err
}

// CompareAndSwap writes value only if key is at expectVersion (0: absent)
// and returns the new version. Otherwise the error is a *CASError
// (ErrCASFailed) with the current version. ErrTimeout: the outcome is
// unknown.
func (c *Client) CompareAndSwap(ctx context.Context, key, value []byte, expectVersion uint64) (uint64, error) {
	v, _, err := c.put(ctx, "cas", key, value, &expectVersion)
	return v, err
}

// put writes key and says which group answered (or was tried last).
func (c *Client) put(ctx context.Context, op string, key, value []byte, expect *uint64) (uint64, string, error) {
	if err := checkKey(op, key); err != nil {
		return 0, "", err
	}
	cl := kvCall(op, withExpect(wire.StreamRequest{Op: wire.StreamPut, Key: key, Value: value}, expect))
	rep, group, err := c.route(ctx, key, cl)
	if err != nil {
		if expect != nil {
			return 0, group, asCASError(err, key, *expect)
		}
		return 0, group, err
	}
	v, err := writeVersion(cl, rep)
	return v, group, err
}

// Delete deletes key and returns the version it deleted. It fails with
// ErrNotFound if the key is absent. ErrTimeout: the outcome is unknown.
func (c *Client) Delete(ctx context.Context, key []byte) (uint64, error) {
	return c.del(ctx, "delete", key, nil)
}

// CompareAndDelete deletes key only if it is at expectVersion (> 0) and
// returns the deleted version. Otherwise the error is a *CASError
// (ErrCASFailed), or ErrNotFound if the key is absent. ErrTimeout: the
// outcome is unknown.
func (c *Client) CompareAndDelete(ctx context.Context, key []byte, expectVersion uint64) (uint64, error) {
	if expectVersion == 0 {
		return 0, invalidArgf("kvclient: compare-and-delete %q: expected version must be > 0", key)
	}
	return c.del(ctx, "compare-and-delete", key, &expectVersion)
}

func (c *Client) del(ctx context.Context, op string, key []byte, expect *uint64) (uint64, error) {
	if err := checkKey(op, key); err != nil {
		return 0, err
	}
	cl := kvCall(op, withExpect(wire.StreamRequest{Op: wire.StreamDelete, Key: key}, expect))
	rep, _, err := c.route(ctx, key, cl)
	if err != nil {
		if expect != nil {
			return 0, asCASError(err, key, *expect)
		}
		return 0, err
	}
	return writeVersion(cl, rep)
}

// writeVersion reads the version of a successful write from its body, or
// from its header if the body does not say.
func writeVersion(cl *call, rep *reply) (uint64, error) {
	if rep.streamed && rep.version != 0 {
		return rep.version, nil
	}
	var wr wire.WriteResult
	if err := json.Unmarshal(rep.body, &wr); err == nil && wr.Version != 0 {
		return wr.Version, nil
	}
	if v, err := wire.ParseUint(rep.header.Get(wire.HeaderVersion)); err == nil && v != 0 {
		return v, nil
	}
	// Applied, but the answer does not say at which version.
	return 0, protocolError(cl, rep.addr, "write answer without a version: %.200q", rep.body)
}

// protocolError is a 2xx answer the client cannot understand.
func protocolError(cl *call, addr, format string, args ...any) *Error {
	return newError(cl.op, addr, &wire.Error{
		Code:    wire.CodeInternal,
		Message: "malformed answer: " + fmt.Sprintf(format, args...),
	})
}
