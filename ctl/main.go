// Command carpkvctl is the operator CLI of carpkv: reads and writes keys,
// shows the state of the cluster and its ring, changes a group's
// membership and runs local clusters, through kvclient and the agents'
// management API (docs/api.md).
//
// The command tree is in app.go (with resolveAddrs, the one place that
// picks the agents), one file per concern: kv.go (put, get, delete, cas),
// membership.go (members, join, remove, transfer-leader), status.go,
// ring.go (ring show, ring owner), ringchange.go (ring add-group,
// remove-group, set-weight, status, and --wait) with ringview.go (how a
// change and its progress are shown),
// local.go (local up, status, down, kill, start, logs; processes in
// ctl/localcluster), localgroup.go (local add-group, remove-group),
// demo.go, bench.go,
// output.go and statusline.go (tables, JSON, progress) and exit.go (exit
// codes, error output).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
