package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/carpkv/carpkv/agent/store"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// The KV stream (kvclient/wire/stream.go, docs/api.md) serves the same
// get, put and delete as the HTTP endpoints, with the same checks and
// answers, on connections upgraded from HTTP: many requests in flight per
// connection, and answers written in batches. HTTP/1.1 cost 40% of a
// leader's CPU under load, a read and a write system call per request
// (docs/benchmarks.md); here both are shared by every request that is
// ready at once.

// streamOutQueue bounds the answers waiting for the writer of one
// connection; a client that does not read them holds up only its own
// handlers, which are bounded by Limits.MaxInFlight.
const streamOutQueue = 1024

// streams tracks the upgraded connections, which http.Server.Shutdown no
// longer sees.
type streams struct {
	mu      sync.Mutex
	conns   map[*streamConn]struct{}
	closing bool
	wg      sync.WaitGroup
}

// kvStream upgrades GET /v1/kv-stream to the KV stream.
func (s *Server) kvStream(c *gin.Context) {
	if !headerHas(c.Request.Header, "Connection", "upgrade") || !strings.EqualFold(c.GetHeader("Upgrade"), wire.StreamProtocol) {
		failCode(c, wire.CodeInvalidArgument, "this endpoint is the KV stream: send Connection: Upgrade and Upgrade: "+wire.StreamProtocol)
		return
	}
	conn, brw, err := c.Writer.Hijack()
	if err != nil {
		failCode(c, wire.CodeInternal, "cannot take over the connection: "+err.Error())
		return
	}
	c.Set(codeKey, "upgraded")
	// The server's read and idle deadlines are for HTTP requests; a stream
	// is idle between bursts as long as its client likes.
	_ = conn.SetDeadline(time.Time{})
	sc := &streamConn{s: s, conn: conn, out: make(chan []byte, streamOutQueue), dead: make(chan struct{})}
	if !s.streams.add(sc) {
		_, _ = io.WriteString(conn, "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		conn.Close()
		return
	}
	_, err = io.WriteString(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+wire.StreamProtocol+"\r\n\r\n")
	if err == nil {
		err = brw.Flush()
	}
	if err != nil {
		s.streams.remove(sc)
		conn.Close()
		return
	}
	go sc.serve(brw.Reader)
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func (st *streams) add(sc *streamConn) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closing {
		return false
	}
	if st.conns == nil {
		st.conns = make(map[*streamConn]struct{})
	}
	st.conns[sc] = struct{}{}
	st.wg.Add(1)
	return true
}

func (st *streams) remove(sc *streamConn) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.conns[sc]; ok {
		delete(st.conns, sc)
		st.wg.Done()
	}
}

// shutdown answers every new request on every stream with unavailable
// (nothing applied: the client retries elsewhere), lets those in flight
// answer, then closes the connections; at ctx's end it closes what is
// left.
func (st *streams) shutdown(ctx context.Context) error {
	st.mu.Lock()
	st.closing = true
	conns := make([]*streamConn, 0, len(st.conns))
	for sc := range st.conns {
		conns = append(conns, sc)
	}
	st.mu.Unlock()
	for _, sc := range conns {
		sc.mu.Lock()
		sc.closing = true
		sc.mu.Unlock()
		go func() {
			// No handler starts after closing is set (serve checks it
			// under mu), so this waits for the last one.
			sc.handlers.Wait()
			_ = sc.conn.SetReadDeadline(time.Now()) // ends serve
		}()
	}
	done := make(chan struct{})
	go func() { st.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, sc := range conns {
			sc.conn.Close()
		}
		return ctx.Err()
	}
}

// streamConn is one upgraded connection: a reader (serve) that starts a
// handler per request, and a writer that sends their answers.
type streamConn struct {
	s        *Server
	conn     net.Conn
	out      chan []byte   // answer frames for the writer
	dead     chan struct{} // closed when the writer fails: answers go nowhere
	handlers sync.WaitGroup

	mu      sync.Mutex
	closing bool // the server shuts down: refuse new requests
}

func (sc *streamConn) serve(r *bufio.Reader) {
	defer sc.s.streams.remove(sc)
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); sc.write() }()
	// In-flight handlers stop waiting on Raft when the connection is gone
	// (their outcome is then the client's to find out, as over HTTP).
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-sc.dead:
			cancel()
		case <-writerDone:
		}
	}()

	lim := sc.s.limits
	// A batch may be larger than one key and value (wire.MaxBatchFrame);
	// handle checks a single operation against the key and value limits.
	maxFrame := wire.StreamRequestHeader + max(lim.MaxKeyBytes+lim.MaxValueBytes, wire.MaxBatchFrame)
	for {
		// Each request has a buffer of its own: its handler outlives the read.
		req, err := wire.ReadRequest(r, maxFrame)
		var tooLarge *wire.FrameTooLargeError
		var malformed *wire.MalformedError
		switch {
		case errors.As(err, &tooLarge):
			sc.answerCode(tooLarge.ID, "stream", wire.CodeTooLarge, fmt.Sprintf(
				"request of %d bytes: the limits are %d bytes of key and %d of value", tooLarge.Size, lim.MaxKeyBytes, lim.MaxValueBytes))
			if _, err := io.CopyN(io.Discard, r, tooLarge.Remaining); err != nil {
				sc.finish(cancel, writerDone)
				return
			}
			continue
		case errors.As(err, &malformed):
			sc.answerCode(malformed.ID, "stream", wire.CodeInvalidArgument, malformed.Error())
			continue
		case err != nil:
			// The client closed, the framing broke, or the server shuts
			// down: no more requests on this connection.
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrUnexpectedEOF) && !isTimeout(err) {
				sc.s.log.Debug("kv stream: closing", "remote", sc.conn.RemoteAddr().String(), "err", err)
			}
			sc.finish(cancel, writerDone)
			return
		}
		if req.Op == wire.StreamPing {
			// Liveness: answered here, not by a handler, so that only a
			// frozen or cut-off agent leaves it unanswered (a busy Raft
			// group does not).
			sc.send(&wire.StreamResponse{ID: req.ID})
			continue
		}
		sc.mu.Lock()
		closing := sc.closing
		if !closing {
			sc.handlers.Add(1)
		}
		sc.mu.Unlock()
		if closing {
			sc.answerCode(req.ID, streamOpName(req.Op), wire.CodeUnavailable, "agent shutting down")
			continue
		}
		// Invariant 6: bounded concurrency over every connection and
		// endpoint; the excess is refused at once, nothing applied.
		select {
		case sc.s.inflight <- struct{}{}:
		default:
			sc.handlers.Done()
			sc.answerCode(req.ID, streamOpName(req.Op), wire.CodeUnavailable, "too many requests in flight")
			continue
		}
		go func() {
			defer sc.handlers.Done()
			defer func() { <-sc.s.inflight }()
			sc.handle(ctx, &req)
		}()
	}
}

// finish waits for the handlers in flight, lets the writer send their
// answers, and closes the connection.
func (sc *streamConn) finish(cancel context.CancelFunc, writerDone chan struct{}) {
	sc.handlers.Wait()
	close(sc.out)
	<-writerDone
	cancel()
	sc.conn.Close()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// write sends answers as they come, several per system call
// (wire.WriteFrames), until serve closes out. If the connection fails,
// dead tells the handlers, and their answers are dropped.
func (sc *streamConn) write() {
	if err := wire.WriteFrames(sc.conn, sc.out, nil); err != nil {
		close(sc.dead)
		sc.conn.Close()
		for range sc.out { // until serve closes it
		}
	}
}

func (sc *streamConn) send(r *wire.StreamResponse) {
	f := wire.AppendResponse(make([]byte, 0, 4+wire.StreamResponseHeader+len(r.Value)), r)
	select {
	case sc.out <- f:
	case <-sc.dead:
	}
}

func (sc *streamConn) answerCode(id uint64, op string, code wire.Code, msg string) {
	sc.answer(id, op, time.Now(), &wire.StreamResponse{Err: &wire.Error{Code: code, Message: msg}})
}

// answer sends r as the answer to request id and records it in the
// request metrics, as observe does for HTTP.
func (sc *streamConn) answer(id uint64, op string, start time.Time, r *wire.StreamResponse) {
	r.ID = id
	code := "ok"
	if r.Err != nil {
		code = string(r.Err.Code)
	}
	sc.s.record(op, code, start)
	sc.send(r)
}

func streamOpName(op wire.StreamOp) string {
	switch op {
	case wire.StreamGet:
		return "stream GET"
	case wire.StreamPut:
		return "stream PUT"
	case wire.StreamDelete:
		return "stream DELETE"
	case wire.StreamMultiPut:
		return "stream MULTIPUT"
	case wire.StreamMultiGet:
		return "stream MULTIGET"
	}
	return "stream"
}

// handle serves one request with the checks of the HTTP endpoints (kv.go).
func (sc *streamConn) handle(ctx context.Context, req *wire.StreamRequest) {
	start := time.Now()
	op := streamOpName(req.Op)
	fail := func(err error) {
		sc.answer(req.ID, op, start, &wire.StreamResponse{Err: toWire(err)})
	}
	if req.Op == wire.StreamMultiPut || req.Op == wire.StreamMultiGet {
		sc.handleBatch(ctx, req, start, op, fail)
		return
	}
	if e := sc.s.checkKey(req.Key); e != nil {
		fail(e)
		return
	}
	switch {
	case len(req.Value) > sc.s.limits.MaxValueBytes:
		fail(sc.s.valueTooLarge())
		return
	case req.Op != wire.StreamPut && len(req.Value) > 0:
		fail(&wire.Error{Code: wire.CodeInvalidArgument, Message: "only a put carries a value"})
		return
	}
	ctx, cancel := context.WithTimeout(ctx, sc.s.deadline(time.Duration(req.TimeoutUS)*time.Microsecond))
	defer cancel()

	if req.Op == wire.StreamGet {
		value, version, index, err := sc.s.node.Get(ctx, req.Key, req.Flags&wire.FlagStale != 0, req.RingEpoch)
		if err != nil {
			fail(err)
			return
		}
		sc.answer(req.ID, op, start, &wire.StreamResponse{Version: version, Index: index, Value: value})
		return
	}
	cmd := store.Command{Op: store.OpPut, Key: req.Key, Value: req.Value, RingEpoch: req.RingEpoch}
	if req.Op == wire.StreamDelete {
		cmd.Op, cmd.Value = store.OpDelete, nil
	} else if cmd.Value == nil {
		cmd.Value = []byte{}
	}
	if req.Flags&wire.FlagCAS != 0 {
		cmd.HasCAS, cmd.Expect = true, req.Expect
	}
	res, err := sc.s.apply(ctx, cmd)
	if err != nil {
		fail(err)
		return
	}
	sc.answer(req.ID, op, start, &wire.StreamResponse{Version: res.Version, Index: res.Index})
}
