// Command etcd is etcd's server, built from the pinned module in this
// module's go.mod (go.etcd.io/etcd/server/v3), so that bench-compare runs
// the anchor at a known version without a download from outside the Go
// module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
