package fakeagent

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// StreamHandler makes an agent accept the KV stream (SetStreamHandler): it
// is called, in the connection's reader goroutine, for every request frame,
// and answers through c now, later or never, or closes c.
type StreamHandler func(c *StreamConn, req wire.StreamRequest)

// StreamConn is one upgraded connection of a fake agent.
type StreamConn struct {
	N    int // 1 for the agent's first stream connection, and so on
	conn net.Conn
	mu   sync.Mutex // serialises answers
}

// Send answers a request (resp.ID names it).
func (c *StreamConn) Send(resp *wire.StreamResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = c.conn.Write(wire.AppendResponse(nil, resp))
}

// Close drops the connection.
func (c *StreamConn) Close() { c.conn.Close() }

type streamState struct {
	handler  atomic.Pointer[StreamHandler]
	upgrades atomic.Int64
	hold     atomic.Bool
	frozen   atomic.Bool
	mu       sync.Mutex
	pings    int64         // under mu
	pinged   chan struct{} // under mu: closed at the next ping (WaitPings)
	conns    []net.Conn
	count    int
}

// SetStreamHandler makes the agent accept the KV stream upgrade and serve
// it with h (nil: refuse it again, so clients use HTTP).
func (a *Agent) SetStreamHandler(h StreamHandler) {
	if h == nil {
		a.stream.handler.Store(nil)
		return
	}
	a.stream.handler.Store(&h)
}

// StreamConns returns how many stream connections the agent accepted.
func (a *Agent) StreamConns() int {
	a.stream.mu.Lock()
	defer a.stream.mu.Unlock()
	return a.stream.count
}

// HoldUpgrades makes the agent leave stream upgrade requests unanswered
// (until it stops), as a frozen agent does.
func (a *Agent) HoldUpgrades(on bool) { a.stream.hold.Store(on) }

// FreezeStreams makes the agent's stream connections read requests and
// leave every one unanswered, pings included, as a SIGSTOPped agent does
// (its kernel still takes the bytes). Off: pings are answered again, and
// requests go to the handler.
func (a *Agent) FreezeStreams(on bool) { a.stream.frozen.Store(on) }

// StreamPings returns how many liveness pings the agent answered.
func (a *Agent) StreamPings() int64 {
	a.stream.mu.Lock()
	defer a.stream.mu.Unlock()
	return a.stream.pings
}

// WaitPings waits until the agent has answered n liveness pings, or ctx
// ends.
func (a *Agent) WaitPings(ctx context.Context, n int64) error {
	for {
		a.stream.mu.Lock()
		if a.stream.pings >= n {
			a.stream.mu.Unlock()
			return nil
		}
		if a.stream.pinged == nil {
			a.stream.pinged = make(chan struct{})
		}
		ch := a.stream.pinged
		a.stream.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (a *Agent) notePing() {
	a.stream.mu.Lock()
	defer a.stream.mu.Unlock()
	a.stream.pings++
	if a.stream.pinged != nil {
		close(a.stream.pinged)
		a.stream.pinged = nil
	}
}

// StreamUpgrades returns how many stream upgrade requests the agent got.
func (a *Agent) StreamUpgrades() int64 { return a.stream.upgrades.Load() }

// serveStream upgrades the connection if a handler is set; false if not.
func (a *Agent) serveStream(w http.ResponseWriter, r *http.Request) bool {
	a.stream.upgrades.Add(1)
	if a.stream.hold.Load() {
		select {
		case <-r.Context().Done():
		case <-a.g.done:
		}
		return true
	}
	hp := a.stream.handler.Load()
	if hp == nil {
		return false
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+wire.StreamProtocol+"\r\n\r\n")
	a.stream.mu.Lock()
	a.stream.count++
	sc := &StreamConn{N: a.stream.count, conn: conn}
	a.stream.conns = append(a.stream.conns, conn)
	a.stream.mu.Unlock()
	go func(r *bufio.Reader) {
		defer conn.Close()
		for {
			req, err := wire.ReadRequest(r, 64<<20)
			if err != nil {
				return
			}
			switch {
			case a.stream.frozen.Load():
			case req.Op == wire.StreamPing:
				// As the agent does: answered by the reader at once.
				a.notePing()
				sc.Send(&wire.StreamResponse{ID: req.ID})
			default:
				(*hp)(sc, req)
			}
		}
	}(brw.Reader)
	return true
}

// closeStreams drops every stream connection (Stop).
func (a *Agent) closeStreams() {
	a.stream.mu.Lock()
	defer a.stream.mu.Unlock()
	for _, c := range a.stream.conns {
		c.Close()
	}
	a.stream.conns = nil
}
