package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/carpkv/carpkv/kvclient"
)

func (e *env) putCommand() *cli.Command {
	return &cli.Command{
		Name:      "put",
		Usage:     "write a key's value and print its new version",
		UsageText: "carpkvctl put [--if-absent] KEY [VALUE|-]",
		Description: `Writes VALUE under KEY. With VALUE "-" or no VALUE, the value is read from
standard input, byte for byte (no trailing newline is stripped). Prints the
key's new version, a number that grows with every write of the key.

If the command times out (exit 6) the write may or may not have been
applied: read the key before writing again.

Examples:
   carpkvctl put greeting hello
   carpkvctl put config/app - < app.json
   carpkvctl put --if-absent lock/leader n1    # exit 5 if the key exists`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "if-absent", Usage: "write only if the key does not exist (exit 5 if it does)"},
		},
		Action: e.put,
	}
}

func (e *env) put(c *cli.Context) error {
	if err := wantArgs(c, 1, 2, "KEY [VALUE|-]"); err != nil {
		return err
	}
	key, val, s, err := e.keyValueSession(c)
	if err != nil {
		return err
	}
	defer s.close()
	var ver uint64
	if c.Bool("if-absent") {
		ver, err = s.kv.PutIfAbsent(s.ctx, key, val)
	} else {
		ver, err = s.kv.Put(s.ctx, key, val)
	}
	if err != nil {
		return err
	}
	return e.printWrite(key, ver)
}

func (e *env) getCommand() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "print a key's value",
		UsageText: "carpkvctl get [--stale] KEY",
		Description: `Prints KEY's value to stdout exactly as stored, with no added newline, so
that it pipes: "carpkvctl get img > img.png". Exit 2 if the key is absent.

With --output json prints {"key", "key_base64", "value", "value_base64",
"version"}; a key or value that is not valid UTF-8 is base64-encoded and its
*_base64 flag is true.

Reads are linearizable (served by the leader) unless --stale is given.

Examples:
   carpkvctl get greeting
   carpkvctl get greeting --output json
   carpkvctl get --stale greeting         # any member, may be behind`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "stale", Usage: "read any member's local copy: faster, works without a leader, may miss recent writes"},
		},
		Action: e.get,
	}
}

func (e *env) get(c *cli.Context) error {
	if err := wantArgs(c, 1, 1, "KEY"); err != nil {
		return err
	}
	key := []byte(c.Args().Get(0))
	s, err := e.connect(c)
	if err != nil {
		return err
	}
	defer s.close()
	var opts []kvclient.ReadOption
	if c.Bool("stale") {
		opts = append(opts, kvclient.Stale())
	}
	v, err := s.kv.Get(s.ctx, key, opts...)
	if err != nil {
		return err
	}
	if !e.json {
		_, err := e.stdout.Write(v.Data)
		return err
	}
	r := valueResult{Version: v.Version}
	r.Key, r.KeyBase64 = bytesField(key)
	r.Value, r.ValueBase64 = bytesField(v.Data)
	return writeJSON(e.stdout, r)
}

func (e *env) deleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Aliases:   []string{"del", "rm"},
		Usage:     "delete a key and print the version it had",
		UsageText: "carpkvctl delete [--cas VERSION] KEY",
		Description: `Deletes KEY and prints the version that was deleted. Exit 2 if the key is
absent. With --cas, deletes only if the key is at VERSION (exit 5 if not).

If the command times out (exit 6) the delete may or may not have been
applied.

Examples:
   carpkvctl delete greeting
   carpkvctl delete greeting --cas 7`,
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "cas", Usage: "delete only if the key's current version is `VERSION` (> 0)"},
		},
		Action: e.del,
	}
}

func (e *env) del(c *cli.Context) error {
	if err := wantArgs(c, 1, 1, "KEY"); err != nil {
		return err
	}
	key := []byte(c.Args().Get(0))
	cas := c.IsSet("cas")
	if cas && c.Uint64("cas") == 0 {
		return &usageError{msg: "delete: --cas must be a version > 0", cmd: "delete"}
	}
	s, err := e.connect(c)
	if err != nil {
		return err
	}
	defer s.close()
	var ver uint64
	if cas {
		ver, err = s.kv.CompareAndDelete(s.ctx, key, c.Uint64("cas"))
	} else {
		ver, err = s.kv.Delete(s.ctx, key)
	}
	if err != nil {
		return err
	}
	return e.printWrite(key, ver)
}

func (e *env) casCommand() *cli.Command {
	return &cli.Command{
		Name:      "cas",
		Usage:     "write a key only if it is at an expected version (compare-and-swap)",
		UsageText: "carpkvctl cas --expect VERSION KEY [VALUE|-]",
		Description: `Writes VALUE under KEY only if the key's current version is VERSION; 0
means "only if the key is absent". Prints the new version. Exit 5 if the
key is at another version; the error says which. VALUE "-" or no VALUE
reads the value from standard input.

If the command times out (exit 6) the write may or may not have been
applied.

Examples:
   V=$(carpkvctl get counter -o json | jq .version)
   carpkvctl cas counter 42 --expect "$V"
   carpkvctl cas lock/leader n2 --expect 0`,
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "expect", Usage: "the `VERSION` the key must be at; 0: absent (required)"},
		},
		Action: e.cas,
	}
}

func (e *env) cas(c *cli.Context) error {
	if err := wantArgs(c, 1, 2, "KEY [VALUE|-]"); err != nil {
		return err
	}
	if !c.IsSet("expect") {
		return &usageError{msg: "cas: --expect VERSION is required (0: the key must be absent)", cmd: "cas"}
	}
	key, val, s, err := e.keyValueSession(c)
	if err != nil {
		return err
	}
	defer s.close()
	ver, err := s.kv.CompareAndSwap(s.ctx, key, val, c.Uint64("expect"))
	if err != nil {
		return err
	}
	return e.printWrite(key, ver)
}

// printWrite prints the version of a write: the bare number (for
// V=$(carpkvctl put ...)) or JSON.
func (e *env) printWrite(key []byte, ver uint64) error {
	if !e.json {
		_, err := fmt.Fprintln(e.stdout, ver)
		return err
	}
	r := writeResult{Version: ver}
	r.Key, r.KeyBase64 = bytesField(key)
	return writeJSON(e.stdout, r)
}

// keyValueSession reads the KEY [VALUE|-] arguments of a write and
// connects. Addresses are resolved before a value is awaited on stdin, so a
// missing cluster fails at once instead of after the user typed the value.
func (e *env) keyValueSession(c *cli.Context) (key, val []byte, s *session, err error) {
	if _, err := resolveAddrs(c); err != nil {
		return nil, nil, nil, err
	}
	key = []byte(c.Args().Get(0))
	if val, err = e.readValue(c, 1); err != nil {
		return nil, nil, nil, err
	}
	if s, err = e.connect(c); err != nil {
		return nil, nil, nil, err
	}
	return key, val, s, nil
}
