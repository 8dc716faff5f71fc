package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// reorderArgs lets flags follow positional arguments, as in
// `carpkvctl cas KEY VALUE --expect 3`, `carpkvctl get KEY -o json` or
// `carpkvctl local up --groups 3`: urfave/cli, like package flag, stops
// parsing flags at the first positional argument. Global flags found after
// the command move before it; a flag of the command or of one of its
// subcommands (`local up`) moves right after the one that defines it
// (innermost first), before the arguments; and "--" is put before the
// arguments when the first one looks like a flag. Nothing after a "--"
// moves. Unknown flags stay flags of the innermost command, so cli reports
// them.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	global := flagArity(app.Flags)
	out := []string{args[0]}
	i := 1
	for i < len(args) && isFlagArg(args[i]) && args[i] != "--" {
		out = append(out, args[i])
		if takesValue(global, args[i]) && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
		i++
	}
	if i >= len(args) {
		return out
	}
	cmd := app.Command(args[i])
	if cmd == nil || cmd.Name == "help" {
		return append(out, args[i:]...)
	}
	chain := []*cli.Command{cmd}
	names := []string{args[i]}
	levels := [][]string{nil} // the flags of each command of the chain
	var globals, positional []string
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		if a == "--" {
			positional = append(positional, rest[j+1:]...)
			break
		}
		if !isFlagArg(a) {
			if sub := subcommand(chain[len(chain)-1], a); sub != nil && len(positional) == 0 {
				chain, names, levels = append(chain, sub), append(names, a), append(levels, nil)
				continue
			}
			positional = append(positional, a)
			continue
		}
		dst, arity := &levels[len(levels)-1], flagArity(chain[len(chain)-1].Flags)
		found := false
		for k := len(chain) - 1; k >= 0 && !found; k-- {
			if ar := flagArity(chain[k].Flags); hasFlag(ar, a) {
				dst, arity, found = &levels[k], ar, true
			}
		}
		if !found && hasFlag(global, a) {
			dst, arity = &globals, global
		}
		*dst = append(*dst, a)
		if takesValue(arity, a) && j+1 < len(rest) {
			j++
			*dst = append(*dst, rest[j])
		}
	}
	out = append(out, globals...)
	for k := range chain {
		out = append(out, names[k])
		out = append(out, levels[k]...)
	}
	if len(positional) > 0 && isFlagArg(positional[0]) {
		out = append(out, "--")
	}
	return append(out, positional...)
}

// subcommand returns cmd's subcommand called name (not "help"), or nil.
func subcommand(cmd *cli.Command, name string) *cli.Command {
	for _, s := range cmd.Subcommands {
		if s.Name != "help" && s.HasName(name) {
			return s
		}
	}
	return nil
}

func hasFlag(arity map[string]bool, a string) bool {
	_, ok := arity[flagName(a)]
	return ok
}

// flagArity maps every name of every flag to whether it takes a value.
func flagArity(flags []cli.Flag) map[string]bool {
	m := map[string]bool{}
	for _, f := range flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			m[n] = !isBool
		}
	}
	return m
}

// isFlagArg: "-x", "--x", "--x=v"; "-" alone is an argument (stdin).
func isFlagArg(a string) bool { return len(a) > 1 && a[0] == '-' }

func flagName(a string) string {
	n := strings.TrimLeft(a, "-")
	if k, _, ok := strings.Cut(n, "="); ok {
		return k
	}
	return n
}

// takesValue reports whether flag argument a consumes the next argument.
func takesValue(arity map[string]bool, a string) bool {
	return !strings.Contains(a, "=") && arity[flagName(a)]
}
