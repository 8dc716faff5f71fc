package testcluster

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

// Ports for agents are chosen by the test and bound later by the agent
// process, so between the two the port must not go to anyone else. Two
// things took them when FreePort asked the kernel for port 0 and closed it:
// the kernel handed the same port out again to a later FreePort of the same
// test (two agents then fought over one address), and any outgoing
// connection on the machine may take a port of the ephemeral range. So
// ports come from below the ephemeral range (Linux's default starts at
// 32768), are free for TCP and UDP (gossip uses both) when chosen, and are
// never handed out twice by one test process.
const (
	portLow  = 20000
	portHigh = 32000
)

var (
	portsMu sync.Mutex
	handed  = map[int]bool{}
)

// FreePort returns a loopback address with a port that was free a moment
// ago for TCP and UDP and that no other caller in this process has got.
func FreePort(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(FreePortRange(t, 1))
}

// FreePortRange returns base such that base..base+n-1 were free a moment
// ago and none was handed out before in this process.
func FreePortRange(t testing.TB, n int) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		base := portLow + rand.IntN(portHigh-portLow-n)
		ok := true
		for p := base; p < base+n && ok; p++ {
			ok = !handed[p] && portFree(p)
		}
		if ok {
			for p := base; p < base+n; p++ {
				handed[p] = true
			}
			return base
		}
	}
	t.Fatalf("no %d free loopback ports in [%d, %d)", n, portLow, portHigh)
	return 0
}

func portFree(p int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}
