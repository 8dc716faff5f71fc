package kvclient

import (
	"errors"
	"testing"
	"time"

	"github.com/carpkv/carpkv/kvclient/wire"
)

func TestEveryWireCodeMapsToItsError(t *testing.T) {
	tests := []struct {
		code wire.Code
		want error
	}{
		{wire.CodeInvalidArgument, ErrInvalidArgument},
		{wire.CodeTooLarge, ErrTooLarge},
		{wire.CodeNotFound, ErrNotFound},
		{wire.CodeCASFailed, ErrCASFailed},
		{wire.CodeNotLeader, ErrNotLeader},
		{wire.CodeWrongGroup, ErrWrongGroup},
		{wire.CodeStaleRing, ErrStaleRing},
		{wire.CodeUnavailable, ErrUnavailable},
		{wire.CodeTimeout, ErrTimeout},
		{wire.CodeInternal, ErrInternal},
	}
	all := []error{ErrInvalidArgument, ErrTooLarge, ErrNotFound, ErrCASFailed, ErrNotLeader,
		ErrWrongGroup, ErrStaleRing, ErrUnavailable, ErrTimeout, ErrInternal}
	for _, tt := range tests {
		err := error(newError("op", "a:1", &wire.Error{Code: tt.code, Message: "m"}))
		for _, s := range all {
			if got := errors.Is(err, s); got != (s == tt.want) {
				t.Errorf("errors.Is(%s, %v) = %v", tt.code, s, got)
			}
		}
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != tt.code {
			t.Errorf("%s: errors.As *wire.Error failed", tt.code)
		}
	}
	unknown := newError("op", "a:1", &wire.Error{Code: "from_the_future"})
	for _, s := range all {
		if errors.Is(unknown, s) {
			t.Errorf("an unknown code matches %v", s)
		}
	}
}

func TestTransportErrorsSayWhetherTheWriteMayHaveApplied(t *testing.T) {
	c := &Client{}
	write := &call{op: "put"}
	read := &call{op: "get", idempotent: true}
	cause := errors.New("boom")
	tests := []struct {
		name           string
		cl             *call
		sent, deadline bool
		want           error
	}{
		{"write not sent", write, false, false, ErrUnavailable},
		{"write not sent, deadline", write, false, true, ErrUnavailable},
		{"write sent", write, true, false, ErrTimeout},
		{"write sent, deadline", write, true, true, ErrTimeout},
		{"read sent", read, true, false, ErrUnavailable},
		{"read sent, deadline", read, true, true, ErrTimeout},
	}
	for _, tt := range tests {
		err := c.noAnswer(tt.cl, "a:1", tt.sent, tt.deadline, cause)
		if !errors.Is(err, tt.want) || !errors.Is(err, cause) {
			t.Errorf("%s: %v, want %v wrapping the cause", tt.name, err, tt.want)
		}
	}
}

func TestBackoffGrowsJitteredAndCapped(t *testing.T) {
	g := &groupClient{c: &Client{cfg: Config{BackoffMin: 20 * time.Millisecond, BackoffMax: time.Second}}}
	for n := range 20 {
		want := min(20*time.Millisecond<<min(n, 10), time.Second)
		for range 50 {
			d := g.backoff(n)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
}
