// Package etcdkv adapts an etcd v3 client to loadgen.KV, so that the load
// generator behind carpkvctl bench drives etcd with the same workload.
//
// Each operation is one etcd request, as each is one carpkv request:
// put is a Put, get a Get (serializable when stale reads are asked for:
// etcd's local read, the counterpart of carpkv's stale read), delete a
// Delete, and cas a Txn comparing the key's mod revision with the one last
// seen (0: absent), which on failure also reads the current revision, as
// carpkv's cas answers with the current version.
//
// Nothing else happens per operation: the revision bookkeeping that cas
// needs is kept only when Options.CAS asks for it, so that a put or get
// costs the client what it costs etcd's own benchmark tool
// (go.etcd.io/etcd/v3/tools/benchmark), which docs/benchmarks.md checks
// this adapter against.
package etcdkv

import (
	"context"
	"errors"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/carpkv/carpkv/internal/loadgen"
)

// Errors for the outcomes loadgen counts as normal.
var (
	ErrNotFound  = errors.New("etcdkv: key not found")
	ErrCASFailed = errors.New("etcdkv: mod revision mismatch")
)

// KV is a loadgen.KV over one or more etcd clients, used in turn; each
// loadgen worker gets one client of its own (ForWorker), as etcd's
// benchmark tool binds each of its clients to one connection.
type KV struct {
	clients  []*clientv3.Client
	next     *atomic.Uint64   // round robin when no client is bound
	fixed    *clientv3.Client // bound by ForWorker; nil: round robin
	opts     Options
	versions *loadgen.Versions // mod revisions (never negative); only with opts.CAS
}

// Options are the choices of a KV; the zero value sends linearizable gets
// and keeps no revisions.
type Options struct {
	// Serializable makes gets serializable (etcd's local read).
	Serializable bool
	// CAS keeps the last mod revision seen of every key (a sharded map
	// update on every operation), which CAS compares against. Without
	// it, CAS compares against 0 (absent) and fails on every existing
	// key.
	CAS bool
}

// New returns a KV over clients (at least one).
func New(clients []*clientv3.Client, opts Options) *KV {
	return &KV{clients: clients, next: new(atomic.Uint64), opts: opts, versions: new(loadgen.Versions)}
}

// ForWorker implements loadgen.PerWorkerKV: worker id uses client
// id mod len(clients) only.
func (kv *KV) ForWorker(id int) loadgen.KV {
	w := *kv
	w.fixed = kv.clients[id%len(kv.clients)]
	return &w
}

// setVersion records key's mod revision for CAS, when it is kept.
func (kv *KV) setVersion(key []byte, rev int64) {
	if kv.opts.CAS {
		kv.versions.Set(key, uint64(rev))
	}
}

func (kv *KV) client() *clientv3.Client {
	if kv.fixed != nil {
		return kv.fixed
	}
	return kv.clients[kv.next.Add(1)%uint64(len(kv.clients))]
}

// Put implements loadgen.KV.
func (kv *KV) Put(ctx context.Context, key, value []byte) error {
	r, err := kv.client().Put(ctx, string(key), string(value))
	if err == nil {
		kv.setVersion(key, r.Header.Revision)
	}
	return err
}

// Get implements loadgen.KV.
func (kv *KV) Get(ctx context.Context, key []byte) error {
	var opts []clientv3.OpOption
	if kv.opts.Serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	r, err := kv.client().Get(ctx, string(key), opts...)
	if err != nil {
		return err
	}
	if len(r.Kvs) == 0 {
		kv.setVersion(key, 0)
		return ErrNotFound
	}
	kv.setVersion(key, r.Kvs[0].ModRevision)
	return nil
}

// CAS implements loadgen.KV.
func (kv *KV) CAS(ctx context.Context, key, value []byte) error {
	k := string(key)
	r, err := kv.client().Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(k), "=", int64(kv.versions.Get(key)))).
		Then(clientv3.OpPut(k, string(value))).
		Else(clientv3.OpGet(k)).
		Commit()
	if err != nil {
		return err
	}
	if r.Succeeded {
		kv.setVersion(key, r.Header.Revision)
		return nil
	}
	var cur int64
	if rr := r.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
		cur = rr.Kvs[0].ModRevision
	}
	kv.setVersion(key, cur)
	return ErrCASFailed
}

// Delete implements loadgen.KV.
func (kv *KV) Delete(ctx context.Context, key []byte) error {
	r, err := kv.client().Delete(ctx, string(key))
	if err != nil {
		return err
	}
	kv.setVersion(key, 0)
	if r.Deleted == 0 {
		return ErrNotFound
	}
	return nil
}

// Classify sorts the errors of KV for loadgen.
func Classify(err error) loadgen.Class {
	switch {
	case err == nil:
		return loadgen.OK
	case errors.Is(err, ErrNotFound):
		return loadgen.NotFound
	case errors.Is(err, ErrCASFailed):
		return loadgen.CASFailed
	case errors.Is(err, context.DeadlineExceeded):
		return loadgen.Timeout
	}
	switch status.Code(err) {
	case codes.DeadlineExceeded:
		return loadgen.Timeout
	case codes.Unavailable:
		return loadgen.Unavailable
	}
	return loadgen.Other
}
