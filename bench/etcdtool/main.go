// Command etcd-benchmark is etcd's own benchmark tool
// (go.etcd.io/etcd/v3/tools/benchmark), built against the etcd client,
// server and gRPC versions that bench/go.mod pins, so that bench-compare
// can check its etcd driver against the tool etcd's maintainers measure
// with. The tool's module is not served at v3.6.16; its v3.6.8 code builds
// against the v3.6.16 libraries (go.mod pins them), and only the tool's
// command package is imported here: nothing of it is copied.
package main

import (
	"fmt"
	"os"

	"go.etcd.io/etcd/v3/tools/benchmark/cmd"
)

func main() {
	if err := cmd.RootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
