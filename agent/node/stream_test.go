package node

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// peer accepts connections and hands them to the test.
func peer(t *testing.T) (string, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			accepted <- c
		}
	}()
	return ln.Addr().String(), accepted
}

func dialStream(t *testing.T, addr string) *redialConn {
	t.Helper()
	s := &stream{}
	c, err := s.Dial(raft.ServerAddress(addr), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*redialConn)
}

func next(t *testing.T, accepted <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-accepted:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

func roundTrip(t *testing.T, c net.Conn, srv net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(srv, got); err != nil || string(got) != msg {
		t.Fatalf("peer read %q, %v", got, err)
	}
}

func TestPooledConnectionThePeerClosedIsRedialedWhenAnRPCStarts(t *testing.T) {
	addr, accepted := peer(t)
	c := dialStream(t, addr)
	srv := next(t, accepted)
	roundTrip(t, c, srv, "before")

	// The peer restarts: its end of the connection is closed.
	srv.Close()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !peerClosed(c.conn()) {
		if time.Now().After(deadline) {
			t.Fatal("the peer's close never showed")
		}
		<-tick.C
	}
	old := c.conn()
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if c.conn() == old {
		t.Fatal("the closed connection was kept")
	}
	roundTrip(t, c, next(t, accepted), "after")
}

func TestOpenConnectionIsKept(t *testing.T) {
	addr, accepted := peer(t)
	c := dialStream(t, addr)
	srv := next(t, accepted)
	roundTrip(t, c, srv, "x")
	// Data waiting to be read does not make it look closed, and is not
	// consumed by the check.
	if _, err := srv.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	old := c.conn()
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if c.conn() != old {
		t.Fatal("an open connection was replaced")
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "y" {
		t.Fatalf("read %q, %v", b, err)
	}
}

func TestStreamRefusesAnUnspecifiedAdvertiseAddress(t *testing.T) {
	if _, err := newStream("127.0.0.1:0", &net.TCPAddr{IP: net.IPv4zero, Port: 7000}); err == nil {
		t.Fatal("0.0.0.0 accepted as the advertised address")
	}
}
