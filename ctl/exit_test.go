package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

func agentErr(code wire.Code) error {
	return &kvclient.Error{Op: "op", Addr: "a:1", Code: code, Wire: &wire.Error{Code: code, Message: "m"}}
}

func TestExitCodeOfEveryError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"success", nil, 0},
		{"other", errors.New("disk full"), 1},
		{"internal", agentErr(wire.CodeInternal), 1},
		{"closed client", kvclient.ErrClosed, 1},
		{"not found", agentErr(wire.CodeNotFound), 2},
		{"wrapped not found", fmt.Errorf("get: %w", agentErr(wire.CodeNotFound)), 2},
		{"usage", usageErrorf("missing arguments"), 3},
		{"invalid argument", agentErr(wire.CodeInvalidArgument), 3},
		{"client-side invalid", fmt.Errorf("x: %w", kvclient.ErrInvalidArgument), 3},
		{"too large", agentErr(wire.CodeTooLarge), 3},
		{"unavailable", agentErr(wire.CodeUnavailable), 4},
		{"not leader exhausted", agentErr(wire.CodeNotLeader), 4},
		{"wrong group", agentErr(wire.CodeWrongGroup), 4},
		{"stale ring", agentErr(wire.CodeStaleRing), 4},
		{"key moving", agentErr(wire.CodeKeyMoving), 4},
		{"ring change in progress", agentErr(wire.CodeRingChangeInProgress), 7},
		{"wrapped ring change in progress", fmt.Errorf("add-group: %w", agentErr(wire.CodeRingChangeInProgress)), 7},
		{"unavailable at the deadline", fmt.Errorf("%w (gave up: %w)", agentErr(wire.CodeUnavailable), context.DeadlineExceeded), 4},
		{"cas failed", &kvclient.CASError{Key: []byte("k"), Current: 3, Err: agentErr(wire.CodeCASFailed).(*kvclient.Error)}, 5},
		{"server timeout", agentErr(wire.CodeTimeout), 6},
		{"client timeout", fmt.Errorf("put: %w: %w", kvclient.ErrTimeout, context.DeadlineExceeded), 6},
		{"deadline before sending", fmt.Errorf("put: nothing sent: %w", context.DeadlineExceeded), 6},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("%s: exitCode(%v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestJSONErrorCodeFollowsTheExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want wire.Code
	}{
		{usageErrorf("x"), wire.CodeInvalidArgument},
		{fmt.Errorf("%w: stdin", kvclient.ErrTooLarge), wire.CodeTooLarge},
		{fmt.Errorf("%w: unreachable", kvclient.ErrUnavailable), wire.CodeUnavailable},
		{fmt.Errorf("%w", kvclient.ErrTimeout), wire.CodeTimeout},
		{errors.New("x"), wire.CodeInternal},
		{fmt.Errorf("%w", kvclient.ErrRingChangeInProgress), wire.CodeRingChangeInProgress},
	}
	for _, tt := range tests {
		if got := codeFor(tt.err); got != tt.want {
			t.Errorf("codeFor(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}
