package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// Exit codes of carpkvctl, part of its interface: scripts branch on them.
// exitCode is the only place that decides them.
const (
	exitOK          = 0
	exitError       = 1 // anything else: I/O, a bug, an answer outside the protocol
	exitNotFound    = 2 // no such key or node
	exitInvalid     = 3 // invalid input, too large, usage error
	exitUnavailable = 4 // no agent could serve it (unavailable, not_leader, wrong_group, stale_ring, key_moving): nothing applied
	exitCASFailed   = 5 // compare-and-swap precondition failed
	exitTimeout     = 6 // timed out: a write's outcome is unknown
	exitConflict    = 7 // a ring change was asked for while another one runs
)

const exitCodesHelp = `Exit codes:
   0  success
   1  other error
   2  not found (key or node)
   3  invalid input, value too large, or usage error
   4  unavailable: no leader, agents unreachable, not_leader or wrong_group
      after retries; nothing was applied, the command may be rerun
   5  compare-and-swap failed: the key is not at the expected version
   6  timeout: FOR A WRITE THE OUTCOME IS UNKNOWN; read the key before
      writing again (a ring change whose --wait ran out goes on)
   7  conflict: another ring change is in progress; wait for it
      ("carpkvctl ring status"), then ask again`

// exitCode maps an error of a command to the process exit code.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitInvalid
	case errors.Is(err, kvclient.ErrNotFound):
		return exitNotFound
	case errors.Is(err, kvclient.ErrCASFailed):
		return exitCASFailed
	case errors.Is(err, kvclient.ErrRingChangeInProgress):
		return exitConflict
	case errors.Is(err, kvclient.ErrInvalidArgument), errors.Is(err, kvclient.ErrTooLarge):
		return exitInvalid
	// Before unavailable: an unknown outcome must never read as "nothing applied".
	case errors.Is(err, kvclient.ErrTimeout):
		return exitTimeout
	case errors.Is(err, kvclient.ErrUnavailable), errors.Is(err, kvclient.ErrNotLeader),
		errors.Is(err, kvclient.ErrWrongGroup), errors.Is(err, kvclient.ErrStaleRing),
		errors.Is(err, kvclient.ErrKeyMoving):
		return exitUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return exitTimeout
	}
	return exitError
}

// codeFor is the wire code shown for err in JSON error output: the agent's
// own when it answered, else the code matching the exit code.
func codeFor(err error) wire.Code {
	switch exitCode(err) {
	case exitNotFound:
		return wire.CodeNotFound
	case exitCASFailed:
		return wire.CodeCASFailed
	case exitConflict:
		return wire.CodeRingChangeInProgress
	case exitInvalid:
		if errors.Is(err, kvclient.ErrTooLarge) {
			return wire.CodeTooLarge
		}
		return wire.CodeInvalidArgument
	case exitUnavailable:
		return wire.CodeUnavailable
	case exitTimeout:
		return wire.CodeTimeout
	}
	return wire.CodeInternal
}

// usageError is a command line that cannot be run as given.
type usageError struct {
	msg string
	cmd string // the command, for the help hint; "" for global problems
}

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// reportError writes err to stderr: "carpkvctl: <message>", or with
// --output json the API's error shape, {"error": {...}}.
func (e *env) reportError(err error) {
	msg := strings.TrimPrefix(err.Error(), "kvclient: ")
	if e.json {
		we := &wire.Error{Code: codeFor(err), Message: msg}
		var agent *wire.Error
		if errors.As(err, &agent) {
			we.Code, we.Leader, we.Version, we.Epoch = agent.Code, agent.Leader, agent.Version, agent.Epoch
		}
		b, _ := json.Marshal(wire.ErrorBody{Error: we})
		fmt.Fprintf(e.stderr, "%s\n", b)
		return
	}
	fmt.Fprintf(e.stderr, "carpkvctl: %s\n", msg)
	var ue *usageError
	if errors.As(err, &ue) {
		help := "carpkvctl --help"
		if ue.cmd != "" {
			help = "carpkvctl " + ue.cmd + " --help"
		}
		fmt.Fprintf(e.stderr, "Run '%s' for usage.\n", help)
	}
}
