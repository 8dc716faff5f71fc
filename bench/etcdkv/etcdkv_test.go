package etcdkv_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/carpkv/carpkv/bench/etcdkv"
	"github.com/carpkv/carpkv/internal/loadgen"
)

// startEtcd runs a real single-member etcd in the test process.
func startEtcd(t *testing.T) *clientv3.Client {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.LogLevel = "error"
	u := func(s string) []url.URL { p, _ := url.Parse(s); return []url.URL{*p} }
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = u("http://127.0.0.1:0"), u("http://127.0.0.1:0")
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = u("http://127.0.0.1:0"), u("http://127.0.0.1:0")
	cfg.InitialCluster = cfg.Name + "=http://127.0.0.1:0"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd not ready")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Clients[0].Addr().String()}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func TestOperationsAndOutcomes(t *testing.T) {
	cli := startEtcd(t)
	kv := etcdkv.New([]*clientv3.Client{cli}, etcdkv.Options{CAS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k := []byte("k")
	class := func(err error) loadgen.Class { return etcdkv.Classify(err) }

	if c := class(kv.Get(ctx, k)); c != loadgen.NotFound {
		t.Fatalf("get of an absent key: %v", c)
	}
	if c := class(kv.Delete(ctx, k)); c != loadgen.NotFound {
		t.Fatalf("delete of an absent key: %v", c)
	}
	// cas on a key last seen absent creates it.
	if err := kv.CAS(ctx, k, []byte("1")); err != nil {
		t.Fatalf("cas create: %v", err)
	}
	if err := kv.CAS(ctx, k, []byte("2")); err != nil {
		t.Fatalf("cas at the version just written: %v", err)
	}
	// Another writer moves the key on: the next cas fails and learns the
	// current revision, so the one after succeeds.
	if _, err := cli.Put(ctx, "k", "other"); err != nil {
		t.Fatal(err)
	}
	if err := kv.CAS(ctx, k, []byte("3")); !errors.Is(err, etcdkv.ErrCASFailed) || class(err) != loadgen.CASFailed {
		t.Fatalf("cas after another writer: %v", err)
	}
	if err := kv.CAS(ctx, k, []byte("4")); err != nil {
		t.Fatalf("cas after learning the revision: %v", err)
	}
	r, err := cli.Get(ctx, "k")
	if err != nil || string(r.Kvs[0].Value) != "4" {
		t.Fatalf("value %v, %v", r, err)
	}
	if err := kv.Put(ctx, k, []byte("5")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Get(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	stale := etcdkv.New([]*clientv3.Client{cli}, etcdkv.Options{Serializable: true})
	if c := class(stale.Get(ctx, k)); c != loadgen.NotFound {
		t.Fatalf("serializable get after delete: %v", c)
	}
	expired, cancel2 := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel2()
	if c := class(kv.Put(expired, k, []byte("x"))); c != loadgen.Timeout {
		t.Fatalf("put past its deadline: %v", c)
	}
}

func TestRunnerDrivesEtcd(t *testing.T) {
	cli := startEtcd(t)
	cfg := loadgen.DefaultConfig()
	mix, _ := loadgen.ParseMix("put=40,get=30,cas=20,delete=10")
	cfg.Mix, cfg.Keys, cfg.Concurrency, cfg.Ops, cfg.Duration, cfg.Warmup = mix, 50, 4, 400, 0, 0
	cfg.Classify = etcdkv.Classify
	r, err := loadgen.NewRunner(cfg, etcdkv.New([]*clientv3.Client{cli}, etcdkv.Options{CAS: true}))
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Count() != 400 {
		t.Fatalf("%d ops, want 400", res.Count())
	}
	if errs := res.Report().Errors; errs != 0 {
		t.Fatalf("%d errors: %v", errs, res.Report().ErrorSamples)
	}
	if ok := res.Ops[loadgen.OpCAS].Outcomes[loadgen.OK]; ok == 0 {
		t.Fatal("no cas succeeded")
	}
}
