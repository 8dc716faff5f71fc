package fakeagent

import (
	"fmt"
	"syscall"
	"testing"
)

// DeadAddr returns a loopback address that refuses connections for the
// rest of the test. The port is held by a socket that is bound but never
// listens: the kernel answers a connect with a reset, and no other process
// (another package's agents, running in parallel) can take the port, as
// it could after the usual listen-and-close.
func DeadAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
