// Command carpkvctl is the operator CLI of carpkv: reads and writes keys,
// shows the state of a group and changes its membership, through kvclient
// and the agents' management API (docs/api.md).
//
// The command tree is in app.go, one file per concern: kv.go (put, get,
// delete, cas), membership.go (members, join, remove, transfer-leader),
// status.go, output.go (tables and JSON) and exit.go (exit codes, error
// output).
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
