package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The probes below run inside a container's network namespace, so that
// the firewall can be tested between containers without any tool in the
// (FROM scratch) image: the calling goroutine locks its OS thread, enters
// the namespace of the container's process with setns(2), opens its socket
// there, and never unlocks, so the Go runtime discards the thread instead
// of reusing it in the wrong namespace. A socket stays in the namespace it
// was created in, wherever it is used afterwards.

// inNetns runs fn on a thread inside the network namespace of pid.
func inNetns(pid int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread dies with this goroutine.
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns into the network namespace of pid %d: %w", pid, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// probeTCP reports whether a TCP connection from the namespace of pid (0:
// the host) to addr opens within timeout.
func probeTCP(pid int, addr string, timeout time.Duration) (bool, error) {
	var ok bool
	dial := func() error {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err == nil {
			c.Close()
			ok = true
		}
		return nil
	}
	if pid == 0 {
		return ok, dial()
	}
	return ok, inNetns(pid, dial)
}

// probeUDP reports whether datagrams sent from the namespace of fromPID
// reach a socket listening on toIP:port in the namespace of toPID.
func probeUDP(ctx context.Context, fromPID, toPID int, toIP string, port int, timeout time.Duration) (bool, error) {
	var conn *net.UDPConn
	if err := inNetns(toPID, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(toIP), Port: port})
		return err
	}); err != nil {
		return false, err
	}
	defer conn.Close()
	got := make(chan struct{})
	go func() {
		buf := make([]byte, 64)
		_ = conn.SetReadDeadline(time.Now().Add(timeout))
		if _, _, err := conn.ReadFromUDP(buf); err == nil {
			close(got)
		}
	}()
	if err := inNetns(fromPID, func() error {
		c, err := net.Dial("udp4", net.JoinHostPort(toIP, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		defer c.Close()
		// A few datagrams, in case one is lost for another reason.
		for i := 0; i < 3; i++ {
			if _, err := c.Write([]byte("carpkv-chaos-probe")); err != nil && !errors.Is(err, unix.ECONNREFUSED) {
				return err
			}
		}
		return nil
	}); err != nil {
		return false, err
	}
	select {
	case <-got:
		return true, nil
	case <-time.After(timeout):
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}
