package kvclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// The KV stream (wire/stream.go) carries get, put and delete: a few
// connections per agent, each with many requests in flight, answers matched
// by ID. HTTP stays for management calls and for agents that refuse the
// upgrade. The rules of an attempt are the HTTP ones (attempt.go): a
// request counts as sent once it is queued on a live connection, and a
// connection that dies takes the outcome of every write on it with it
// (ErrTimeout), exactly as a dropped HTTP exchange does.

const (
	// streamConnsPerAgent: connections per agent. Few, so that requests
	// share system calls; more than one, so that one busy reader or
	// writer goroutine does not serialise the client.
	streamConnsPerAgent = 2
	// streamQueue bounds the frames waiting for one connection's writer.
	streamQueue = 1024
	// httpOnlyFor is how long an agent that refused the upgrade is sent
	// HTTP before the upgrade is tried again (it may have been updated).
	httpOnlyFor = time.Minute
)

var (
	// errNoStream: the agent does not speak the stream; use HTTP.
	errNoStream = errors.New("agent refused the KV stream upgrade")
	errRetired  = errors.New("connection retired after an unanswered request")
	// errUnresponsive: a liveness ping went unanswered (watch).
	errUnresponsive = errors.New("agent unresponsive")
)

// streams holds the Client's stream connections, by agent address.
type streams struct {
	c      *Client
	mu     sync.Mutex
	agents map[string]*streamAgent
	closed bool
}

type streamAgent struct {
	mu       sync.Mutex
	conns    [streamConnsPerAgent]*streamConn
	dialing  [streamConnsPerAgent]*dialCall // in progress, for each slot
	next     int
	httpOnly time.Time // until then, HTTP only
}

// dialCall is one dial that every caller needing its slot waits for, so
// that a dead agent costs them one DialTimeout together rather than one
// each in turn.
type dialCall struct {
	done chan struct{}
	sc   *streamConn
	err  error
}

func (ss *streams) agent(addr string) *streamAgent {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.agents == nil {
		ss.agents = make(map[string]*streamAgent)
	}
	a := ss.agents[addr]
	if a == nil {
		a = &streamAgent{}
		ss.agents[addr] = a
	}
	return a
}

func (ss *streams) close() {
	ss.mu.Lock()
	ss.closed = true
	agents := ss.agents
	ss.agents = nil
	ss.mu.Unlock()
	for _, a := range agents {
		a.mu.Lock()
		for _, sc := range a.conns {
			if sc != nil {
				sc.fail(ErrClosed)
			}
		}
		a.mu.Unlock()
	}
}

// conn returns a live, unretired connection to addr, dialling one if
// needed; errNoStream if the agent refuses the upgrade.
func (ss *streams) conn(ctx context.Context, addr string) (*streamConn, error) {
	a := ss.agent(addr)
	a.mu.Lock()
	if time.Now().Before(a.httpOnly) {
		a.mu.Unlock()
		return nil, errNoStream
	}
	i := a.next
	a.next = (a.next + 1) % streamConnsPerAgent
	if sc := a.conns[i]; sc != nil && sc.usable() {
		a.mu.Unlock()
		return sc, nil
	}
	if d := a.dialing[i]; d != nil {
		a.mu.Unlock()
		select {
		case <-d.done:
			return d.sc, d.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	d := &dialCall{done: make(chan struct{})}
	a.dialing[i] = d
	a.mu.Unlock()

	d.sc, d.err = ss.dial(ctx, addr)
	a.mu.Lock()
	// Checked under a.mu, which close takes after setting closed: either
	// close sees this connection, or this sees closed.
	ss.mu.Lock()
	closed := ss.closed
	ss.mu.Unlock()
	if closed && d.err == nil {
		d.sc.fail(ErrClosed)
		d.sc, d.err = nil, ErrClosed
	}
	a.dialing[i] = nil
	if d.err == nil {
		a.conns[i] = d.sc
	} else if errors.Is(d.err, errNoStream) {
		a.httpOnly = time.Now().Add(httpOnlyFor)
	}
	a.mu.Unlock()
	close(d.done)
	return d.sc, d.err
}

// dial opens a connection and upgrades it. Any failure means nothing was
// sent: the upgrade request carries no operation.
func (ss *streams) dial(ctx context.Context, addr string) (*streamConn, error) {
	cfg := ss.c.cfg
	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	conn, err := (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The upgrade exchange is bounded like a dial: an agent that accepts
	// connections but does not answer is as good as dead.
	dl, _ := dctx.Deadline()
	_ = conn.SetDeadline(dl)
	req := "GET " + wire.PathKVStream + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: " + userAgent +
		"\r\nConnection: Upgrade\r\nUpgrade: " + wire.StreamProtocol + "\r\n\r\n"
	br := bufio.NewReaderSize(conn, 64<<10)
	var resp *http.Response
	if _, err = io.WriteString(conn, req); err == nil {
		resp, err = http.ReadResponse(br, nil)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("upgrading to the KV stream: %w", err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusSwitchingProtocols:
	case http.StatusNotFound:
		// An agent from before the stream.
		conn.Close()
		ss.c.log.Debug("kvclient: agent does not offer the KV stream, using HTTP", "agent", addr)
		return nil, errNoStream
	default:
		// Shutting down (503), or not an agent: nothing was sent either way.
		conn.Close()
		return nil, fmt.Errorf("upgrading to the KV stream: agent answered %s", resp.Status)
	}
	_ = conn.SetDeadline(time.Time{})
	sc := &streamConn{
		addr:    addr,
		gone:    ss.c.gone,
		log:     ss.c.log,
		conn:    conn,
		out:     make(chan []byte, streamQueue),
		dead:    make(chan struct{}),
		pending: make(map[uint64]chan streamResult),
		maxResp: cfg.MaxResponseBytes,
	}
	sc.lastRecv.Store(time.Now().UnixNano())
	go sc.read(br)
	go sc.write()
	if cfg.LivenessTimeout > 0 {
		go sc.watch(cfg.LivenessTimeout)
	}
	return sc, nil
}

// streamResult is what a waiter gets: an answer, or ErrTooLarge for an
// answer over MaxResponseBytes (skipped).
type streamResult struct {
	resp     wire.StreamResponse
	tooLarge bool
}

// streamConn is one upgraded connection. A reader goroutine hands answers
// to their waiters; a writer goroutine sends queued frames, several per
// system call.
type streamConn struct {
	addr    string
	gone    func(addr string, last time.Time) // Client.gone: the agent stopped serving
	log     *slog.Logger
	conn    net.Conn
	out     chan []byte
	dead    chan struct{} // closed by fail
	maxResp int64
	// lastRecv is when the reader last got a whole frame (Unix nanoseconds).
	lastRecv atomic.Int64

	mu      sync.Mutex
	err     error // why it died; set with dead
	nextID  uint64
	pending map[uint64]chan streamResult
	// retired: a request on it went unanswered within its timeout, so the
	// agent may be frozen or cut off. New requests open another
	// connection (which fails fast if the agent is gone) instead of
	// queueing behind it; those in flight still wait here, and it closes
	// when the last one ends, as an HTTP connection is dropped after a
	// timed-out exchange.
	retired bool
}

func (sc *streamConn) usable() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.err == nil && !sc.retired
}

func (sc *streamConn) fail(err error) {
	sc.mu.Lock()
	if sc.err != nil {
		sc.mu.Unlock()
		return
	}
	sc.err = err
	close(sc.dead)
	sc.mu.Unlock()
	sc.conn.Close()
}

func (sc *streamConn) read(br *bufio.Reader) {
	max := int(min(sc.maxResp, 1<<31-64)) + wire.StreamResponseHeader
	for {
		resp, err := wire.ReadResponse(br, max)
		res := streamResult{resp: resp}
		var tl *wire.FrameTooLargeError
		if errors.As(err, &tl) {
			res = streamResult{resp: wire.StreamResponse{ID: tl.ID}, tooLarge: true}
			if _, err = io.CopyN(io.Discard, br, tl.Remaining); err == nil {
				sc.deliver(res)
				continue
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the agent closed the stream
			}
			if sc.deathCause() == nil {
				// Not closed by this side: the agent closed it or died
				// (a killed leader's peers still name it for a while).
				sc.gone(sc.addr, time.Now())
			}
			sc.fail(err)
			return
		}
		sc.deliver(res)
	}
}

func (sc *streamConn) deliver(res streamResult) {
	sc.lastRecv.Store(time.Now().UnixNano())
	sc.mu.Lock()
	ch := sc.pending[res.resp.ID]
	delete(sc.pending, res.resp.ID)
	idle := sc.retired && len(sc.pending) == 0
	sc.mu.Unlock()
	if ch != nil {
		ch <- res // buffered: never blocks
	}
	if idle {
		sc.fail(errRetired)
	}
}

func (sc *streamConn) write() {
	if err := wire.WriteFrames(sc.conn, sc.out, sc.dead); err != nil {
		sc.fail(err)
	}
}

// watch is the connection's liveness check. While requests are in flight
// and nothing has arrived for timeout/3, it pings the agent (one ping at a
// time); a ping unanswered for timeout, or that cannot even be queued in
// that time, declares the agent unresponsive: the connection fails, which
// ends its requests as a dropped connection does (a write's outcome is
// unknown, a read is retried elsewhere), and Client.gone keeps the next
// calls away from the agent. An agent frozen by SIGSTOP or cut
// off still has its kernel accept the bytes, so without the ping the
// requests would wait for their whole RequestTimeout (issue 15).
func (sc *streamConn) watch(timeout time.Duration) {
	quiet := timeout / 3
	tick := time.NewTicker(max(quiet/5, time.Millisecond))
	defer tick.Stop()
	var (
		ping   chan streamResult // the ping in flight; nil: none
		sentAt time.Time
	)
	for {
		select {
		case <-sc.dead:
			return
		case <-tick.C:
		}
		now := time.Now()
		if ping != nil {
			select {
			case <-ping:
				ping = nil
			default:
				if now.Sub(sentAt) >= timeout {
					sc.unresponsive(timeout)
					return
				}
				continue
			}
		}
		sc.mu.Lock()
		busy := len(sc.pending) > 0 && sc.err == nil
		sc.mu.Unlock()
		if !busy || now.Sub(time.Unix(0, sc.lastRecv.Load())) < quiet {
			continue
		}
		ch := make(chan streamResult, 1)
		sc.mu.Lock()
		if sc.err != nil {
			sc.mu.Unlock()
			return
		}
		sc.nextID++
		id := sc.nextID
		sc.pending[id] = ch
		sc.mu.Unlock()
		f := wire.AppendRequest(nil, &wire.StreamRequest{ID: id, Op: wire.StreamPing})
		full := time.NewTimer(timeout)
		select {
		case sc.out <- f:
			full.Stop()
			ping, sentAt = ch, now
		case <-sc.dead:
			full.Stop()
			return
		case <-full.C:
			// The writer has not taken a frame for timeout: the agent
			// stopped reading.
			sc.unresponsive(timeout)
			return
		}
	}
}

func (sc *streamConn) unresponsive(timeout time.Duration) {
	sc.mu.Lock()
	n := len(sc.pending)
	sc.mu.Unlock()
	sc.log.Debug("kvclient: agent unresponsive, closing its connection", "agent", sc.addr, "timeout", timeout, "in_flight", n)
	sc.gone(sc.addr, time.Unix(0, sc.lastRecv.Load()))
	sc.fail(fmt.Errorf("%w: %s left a liveness ping unanswered for %v", errUnresponsive, sc.addr, timeout))
}

// roundTrip sends req and waits for its answer. sent says whether the
// request may have reached the agent when err is not nil.
func (sc *streamConn) roundTrip(ctx context.Context, req *wire.StreamRequest) (res streamResult, sent bool, err error) {
	ch := make(chan streamResult, 1)
	sc.mu.Lock()
	if sc.err != nil {
		err = sc.err
		sc.mu.Unlock()
		return res, false, err
	}
	sc.nextID++
	req.ID = sc.nextID
	sc.pending[req.ID] = ch
	sc.mu.Unlock()

	f := wire.AppendRequest(make([]byte, 0, 4+wire.StreamRequestHeader+len(req.Key)+len(req.Value)), req)
	select {
	case sc.out <- f:
	case <-sc.dead:
		sc.forget(req.ID, false)
		return res, false, sc.deathCause()
	case <-ctx.Done():
		sc.forget(req.ID, false)
		return res, false, ctx.Err()
	}
	select {
	case res = <-ch:
		return res, true, nil
	case <-sc.dead:
		return res, true, sc.deathCause()
	case <-ctx.Done():
		sc.forget(req.ID, true)
		return res, true, ctx.Err()
	}
}

func (sc *streamConn) deathCause() error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.err
}

// forget drops a waiter that gave up; unanswered retires the connection.
func (sc *streamConn) forget(id uint64, unanswered bool) {
	sc.mu.Lock()
	delete(sc.pending, id)
	if unanswered {
		sc.retired = true
	}
	idle := sc.retired && len(sc.pending) == 0
	sc.mu.Unlock()
	if idle {
		sc.fail(errRetired)
	}
}

// streamAttempt is attempt (attempt.go) over the KV stream. ok is false
// when the agent does not speak it: the caller uses HTTP.
func (c *Client) streamAttempt(ctx context.Context, addr string, cl *call) (rep *reply, err error, ok bool) {
	req := *cl.stream
	if int64(wire.StreamRequestHeader)+int64(len(req.Key))+int64(len(req.Value)) > wire.MaxStreamFrame {
		// The frame's length would not fit its 32 bits; no agent takes a
		// value this large anyway (--max-value-bytes is at most 64 MiB).
		return nil, fmt.Errorf("kvclient: %s: %w: %d bytes of key and value do not fit a KV stream frame",
			cl.op, ErrTooLarge, len(req.Key)+len(req.Value)), true
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	sc, err := c.streams.conn(actx, addr)
	switch {
	case errors.Is(err, errNoStream):
		return nil, nil, false
	case errors.Is(err, ErrClosed):
		return nil, ErrClosed, true
	case err != nil:
		return nil, c.noAnswer(cl, addr, false, actx.Err() != nil, err), true
	}
	if cl.epoch > 0 {
		// Invariant 3, as in attempt: the group checks the key under it.
		req.RingEpoch = cl.epoch
	}
	if d := serverTimeout(actx); d > 0 {
		req.TimeoutUS = uint32(min(d/time.Microsecond, 1<<32-1))
	}
	res, sent, err := sc.roundTrip(actx, &req)
	if err != nil {
		return nil, c.noAnswer(cl, addr, sent, actx.Err() != nil, err), true
	}
	if res.tooLarge {
		return nil, fmt.Errorf("kvclient: %s: %w: answer over MaxResponseBytes %d", cl.op, ErrTooLarge, c.cfg.MaxResponseBytes), true
	}
	if res.resp.Err != nil {
		return nil, newError(cl.op, addr, res.resp.Err), true
	}
	return &reply{addr: addr, body: res.resp.Value, version: res.resp.Version, streamed: true}, nil, true
}
