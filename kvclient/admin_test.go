package kvclient_test

import (
	"errors"
	"testing"
	"time"

	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

func TestMembershipCallsFollowTheLeader(t *testing.T) {
	g := newGroup(t, 3)
	g.SetLeader(1)
	c := newClient(t, fastConfig(g.Agent(0).Addr()))
	ctx := ctxFor(t, 5*time.Second)

	conf, err := c.Configuration(ctx)
	if err != nil {
		t.Fatalf("Configuration: %v", err)
	}
	if len(conf.Servers) != 3 || !conf.Servers[1].Leader || conf.Servers[1].HTTPAddr != g.Agent(1).Addr() {
		t.Fatalf("Configuration = %+v", conf)
	}
	idx, err := c.Join(ctx, wire.JoinRequest{ID: "n4", RaftAddr: "127.0.0.1:17004", HTTPAddr: "127.0.0.1:17104", Nonvoter: true})
	if err != nil || idx == 0 {
		t.Fatalf("Join = %d, %v", idx, err)
	}
	if c.Leader() != g.Agent(1).Addr() {
		t.Fatalf("Join did not follow the hint to the leader: cached %q", c.Leader())
	}
	if again, err := c.Join(ctx, wire.JoinRequest{ID: "n4", RaftAddr: "127.0.0.1:17004", HTTPAddr: "127.0.0.1:17104"}); err != nil || again != idx {
		t.Fatalf("second Join = %d, %v; want the no-op %d", again, err, idx)
	}
	if _, err := c.Remove(ctx, "n4"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := c.Remove(ctx, "n4"); !errors.Is(err, kvclient.ErrNotFound) {
		t.Fatalf("second Remove: %v, want ErrNotFound", err)
	}
	if _, err := c.Join(ctx, wire.JoinRequest{ID: "n4", RaftAddr: "x:1", HTTPAddr: "x:2"}); !errors.Is(err, kvclient.ErrInvalidArgument) {
		t.Fatalf("Join of a removed ID: %v, want ErrInvalidArgument", err)
	}
	if err := c.TransferLeadership(ctx, "n3"); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	if g.Leader() != 2 {
		t.Fatalf("leader is agent %d after transfer to n3", g.Leader())
	}
	if err := c.TransferLeadership(ctx, ""); err != nil {
		t.Fatalf("TransferLeadership to anyone: %v", err)
	}
}

func TestPerAgentCallsAskOneAgentOnce(t *testing.T) {
	g := newGroup(t, 2)
	c := newClient(t, fastConfig(g.Addrs()...))
	ctx := ctxFor(t, 5*time.Second)

	info, err := c.Self(ctx, g.Agent(0).Addr())
	if err != nil || info.ID != "n1" || info.State != "Leader" || info.Group != "g1" {
		t.Fatalf("Self = %+v, %v", info, err)
	}
	if err := c.Health(ctx, "http://"+g.Agent(1).Addr()); err != nil {
		t.Fatalf("Health: %v", err)
	}
	if err := c.Ready(ctx, g.Agent(1).Addr()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	g.SetLeader(-1)
	before := g.Agent(1).Requests()
	var e *kvclient.Error
	if err := c.Ready(ctx, g.Agent(1).Addr()); !errors.Is(err, kvclient.ErrUnavailable) || !errors.As(err, &e) {
		t.Fatalf("Ready without a leader: %v, want an *Error unavailable", err)
	}
	if n := g.Agent(1).Requests() - before; n != 1 {
		t.Fatalf("Ready sent %d requests, want 1", n)
	}
	dead := deadAddr(t)
	if _, err := c.Self(ctx, dead); !errors.Is(err, kvclient.ErrUnavailable) || errors.As(err, &e) {
		t.Fatalf("Self of a dead agent: %v, want ErrUnavailable without an agent answer", err)
	}
}
