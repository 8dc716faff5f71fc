//go:build !unix

package node

import "net"

// peerClosed cannot peek at a socket here; pooled connections are used as
// they are.
func peerClosed(net.Conn) bool { return false }
