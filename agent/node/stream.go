package node

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// stream is Raft's TCP stream layer (raft.TCPStreamLayer) with one fix.
//
// raft.NetworkTransport pools connections per peer and hands a pooled one
// out without checking it. When the peer restarts, the connections it had
// are closed at its end, and the next RPC on each fails with EOF. A leader
// retries replication at once, but a (pre-)vote that fails costs a whole
// election round: a follower that once led the group still holds the
// connections its heartbeats used, and after a peer restart its elections
// failed round after round, one stale connection each, while the group had
// no leader (found by the chaos suite, docs/testing.md).
//
// So the connections it dials check, when an RPC starts on them (the
// transport sets a deadline on the connection first), whether the peer has
// closed them, and if so dial the peer again in their place, before a byte
// of the RPC is sent.
type stream struct {
	ln        net.Listener
	advertise net.Addr
}

// newStream listens on bind; peers are told advertise, which must be a
// TCP address with a specific IP (as raft.NewTCPTransport requires).
func newStream(bind string, advertise net.Addr) (*stream, error) {
	if a, ok := advertise.(*net.TCPAddr); !ok || a.IP == nil || a.IP.IsUnspecified() {
		return nil, fmt.Errorf("advertise address %v is not a specific TCP address", advertise)
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	return &stream{ln: ln, advertise: advertise}, nil
}

func (s *stream) Accept() (net.Conn, error) { return s.ln.Accept() }
func (s *stream) Close() error              { return s.ln.Close() }
func (s *stream) Addr() net.Addr            { return s.advertise }

// Dial implements raft.StreamLayer.
func (s *stream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	return &redialConn{Conn: c, addr: string(address), timeout: timeout}, nil
}

// redialConn is a dialed connection that replaces itself with a new one
// when an RPC starts on it after the peer closed it.
type redialConn struct {
	addr    string
	timeout time.Duration

	mu sync.Mutex
	net.Conn
}

func (c *redialConn) conn() net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn
}

func (c *redialConn) Read(p []byte) (int, error)  { return c.conn().Read(p) }
func (c *redialConn) Write(p []byte) (int, error) { return c.conn().Write(p) }
func (c *redialConn) Close() error                { return c.conn().Close() }

// SetDeadline is where the transport starts a request-response RPC on the
// connection (pipelined appends set read and write deadlines instead, and
// never go back to the pool): nothing is in flight on it, so a connection
// the peer has closed can be swapped for a new one. If the peer cannot be
// reached the old connection stays and the RPC fails as it would have.
func (c *redialConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if peerClosed(c.Conn) {
		if fresh, err := net.DialTimeout("tcp", c.addr, c.timeout); err == nil {
			_ = c.Conn.Close()
			c.Conn = fresh
		}
	}
	return c.Conn.SetDeadline(t)
}

func (c *redialConn) SetReadDeadline(t time.Time) error  { return c.conn().SetReadDeadline(t) }
func (c *redialConn) SetWriteDeadline(t time.Time) error { return c.conn().SetWriteDeadline(t) }
func (c *redialConn) LocalAddr() net.Addr                { return c.conn().LocalAddr() }
func (c *redialConn) RemoteAddr() net.Addr               { return c.conn().RemoteAddr() }
