package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/carpkv/carpkv/kvclient"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// env is what one run of the CLI reads and writes.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	json           bool   // --output json; known once the global flags are parsed
	prog           string // how carpkvctl was invoked (args[0]), for hints
}

// run runs the CLI with args (args[0] is the program name) and returns the
// process exit code. Tests call it in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) > 0 {
		e.prog = args[0]
	}
	app := e.newApp()
	err := app.RunContext(ctx, reorderArgs(app, args))
	if err != nil {
		e.reportError(err)
	}
	return exitCode(err)
}

func (e *env) newApp() *cli.App {
	app := &cli.App{
		Name:      "carpkvctl",
		Usage:     "operate a carpkv cluster: keys, status, ring, membership, local clusters",
		UsageText: "carpkvctl [global options] command [command options] [arguments...]",
		Version:   version,
		Description: `carpkvctl talks to carpkv agents over their HTTP API. Give it the HTTP
address of one or more agents, of any group (--addr, or CARPKV_ADDR); without
either it uses the local cluster started by "carpkvctl local up". It fetches
the ring, sends each key to its owner group's leader, and retries what is
safe to retry.

Examples:
   carpkvctl local up --groups 3 --replicas 3    # a local 3×3 cluster
   carpkvctl put greeting hello
   carpkvctl get greeting
   carpkvctl ring owner greeting
   carpkvctl ring add-group g4 --wait            # a ring change, followed to the end
   export CARPKV_ADDR=10.0.0.1:7101,10.0.0.2:7101   # or a remote one
   echo -n '{"n":1}' | carpkvctl put config/app -
   carpkvctl get greeting --output json
   carpkvctl status

Flags may follow arguments ("carpkvctl get KEY -o json"). A key starting
with "-" goes after "--": "carpkvctl get -- -key".

Output: results go to stdout, as tables (default) or JSON (--output json).
Errors go to stderr, as "carpkvctl: <message>" or, with --output json, as
one JSON object in the API's error shape:
   {"error": {"code": "not_found", "message": "..."}}

` + exitCodesHelp,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{
				Name:    "addr",
				Aliases: []string{"a"},
				EnvVars: []string{"CARPKV_ADDR"},
				Usage:   "HTTP `HOST:PORT` of an agent (any group); repeat or comma-separate for several (default: the local cluster)",
			},
			&cli.StringFlag{
				Name:    "output",
				Aliases: []string{"o"},
				Value:   "table",
				Usage:   "output `FORMAT`: table or json (errors too, on stderr)",
			},
			&cli.DurationFlag{
				Name:    "timeout",
				Aliases: []string{"t"},
				Value:   5 * time.Second,
				Usage:   "deadline of the whole command, retries included; past it a write's outcome is unknown (exit 6); a ring change's --wait defaults to 30m",
			},
			&cli.BoolFlag{
				Name:  "verbose",
				Usage: "log retries and leader changes to stderr",
			},
		},
		Commands: []*cli.Command{
			e.putCommand(), e.getCommand(), e.deleteCommand(), e.casCommand(),
			e.membersCommand(), e.joinCommand(), e.removeCommand(), e.transferCommand(),
			e.statusCommand(), e.benchCommand(),
			e.ringCommand(), e.localCommand(), e.demoCommand(),
		},
		Before:       e.before,
		Action:       e.noCommand,
		OnUsageError: onUsageError,
		Reader:       e.stdin,
		Writer:       e.stdout,
		ErrWriter:    e.stderr,
		// Exit codes are decided in one place (exit.go); cli must not exit.
		ExitErrHandler: func(*cli.Context, error) {},
		Suggest:        true,
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = onUsageError
	}
	return app
}

// before checks the global flags.
func (e *env) before(c *cli.Context) error {
	switch c.String("output") {
	case "table":
	case "json":
		e.json = true
	default:
		return usageErrorf("--output must be table or json, not %q", c.String("output"))
	}
	if c.Duration("timeout") <= 0 {
		return usageErrorf("--timeout must be positive, not %v", c.Duration("timeout"))
	}
	return nil
}

// noCommand runs when no command was named.
func (e *env) noCommand(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErrorf("unknown command %q (see 'carpkvctl --help')", c.Args().First())
	}
	_ = cli.ShowAppHelp(c)
	return usageErrorf("no command given")
}

func onUsageError(c *cli.Context, err error, isSubcommand bool) error {
	ue := &usageError{msg: err.Error()}
	if isSubcommand {
		ue.cmd = c.Command.Name
	}
	return ue
}

// resolveAddrs is the single place that decides which agents a command
// talks to: --addr (repeatable, comma-separated), else CARPKV_ADDR, else
// the running local cluster (its state file, see localAddrs), else a usage
// error saying how to give one.
func resolveAddrs(c *cli.Context) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, v := range c.StringSlice("addr") { // the flag, or CARPKV_ADDR
		for _, a := range strings.Split(v, ",") {
			a = strings.TrimSpace(a)
			if a != "" && !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	addrs, why := localAddrs()
	if len(addrs) > 0 {
		return addrs, nil
	}
	msg := "no agent address: pass --addr HOST:PORT, set CARPKV_ADDR, or start a local cluster with 'carpkvctl local up'"
	if why != "" {
		msg += " (" + why + ")"
	}
	return nil, &usageError{msg: msg, cmd: c.Command.Name}
}

// session is what a command needs to talk to the cluster: a client and a
// context bounded by --timeout.
type session struct {
	kv     *kvclient.Client
	ctx    context.Context
	cancel context.CancelFunc
}

func (s *session) close() {
	s.cancel()
	s.kv.Close()
}

func (e *env) connect(c *cli.Context) (*session, error) {
	addrs, err := resolveAddrs(c)
	if err != nil {
		return nil, err
	}
	cfg := kvclient.Config{Addrs: addrs}
	if c.Bool("verbose") {
		cfg.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	kv, err := kvclient.New(cfg)
	if err != nil {
		return nil, usageErrorf("--addr: %v", err)
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	return &session{kv: kv, ctx: ctx, cancel: cancel}, nil
}

// wantArgs checks the number of positional arguments; names is how the
// usage line calls them.
func wantArgs(c *cli.Context, lo, hi int, names string) error {
	n := c.NArg()
	if n >= lo && n <= hi {
		return nil
	}
	msg := fmt.Sprintf("%s: missing arguments: want %s", c.Command.Name, names)
	if n > hi {
		msg = fmt.Sprintf("%s: too many arguments (%d): want %s", c.Command.Name, n, names)
	}
	return &usageError{msg: msg, cmd: c.Command.Name}
}

// errNoStdin is returned when a value should come from stdin but stdin is
// not readable.
var errNoStdin = errors.New("no standard input")

// readValue returns the value argument, or stdin if it is "-" or absent.
// Stdin is read up to maxStdinValue bytes.
func (e *env) readValue(c *cli.Context, idx int) ([]byte, error) {
	if c.NArg() > idx && c.Args().Get(idx) != "-" {
		return []byte(c.Args().Get(idx)), nil
	}
	if e.stdin == nil {
		return nil, errNoStdin
	}
	b, err := io.ReadAll(io.LimitReader(e.stdin, maxStdinValue+1))
	if err != nil {
		return nil, fmt.Errorf("reading the value from stdin: %w", err)
	}
	if len(b) > maxStdinValue {
		return nil, fmt.Errorf("%w: value on stdin is over %d bytes", kvclient.ErrTooLarge, maxStdinValue)
	}
	return b, nil
}

// maxStdinValue bounds a value read from stdin (agents' own limit is
// lower by default: --max-value-bytes, 1 MiB).
const maxStdinValue = 64 << 20
