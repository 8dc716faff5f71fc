// Package kvclient is the Go client of carpkv. Applications import it
// without the server's dependencies: it needs the standard library,
// kvclient/wire and the pure carp package only.
//
//	c, err := kvclient.New(kvclient.Config{Addrs: []string{"10.0.0.1:7101", "10.0.0.2:7101"}})
//	if err != nil { ... }
//	defer c.Close()
//	ver, err := c.Put(ctx, []byte("user/42"), []byte(`{"name":"ada"}`))
//	v, err := c.Get(ctx, []byte("user/42"))
//
//	res, err := c.MultiPut(ctx, []kvclient.KV{{Key: k1, Value: v1}, {Key: k2, Value: v2}})
//
// A Client is safe for concurrent use by many goroutines and should be
// shared: it keeps a pool of connections, the ring, and the leader of
// each group it last talked to.
//
// # Routing across groups
//
// A cluster is many Raft groups; the ring (epoch, CARP mode, groups and
// weights) says which group owns a key. Config.Addrs are seeds: agents of
// any group. The first call fetches the ring from them (GET /v1/ring, one
// fetch shared by concurrent callers) and learns every group's members
// and leader from it; from then on each key goes straight to its owner
// group's leader, and every KV request carries the ring epoch
// (X-Carpkv-Ring-Epoch). A group checks ownership under its own committed
// ring and refuses keys it does not own, so a stale client ring costs a
// retry, never a misplaced write. The ring is refreshed only when an
// answer says it may be wrong:
//   - wrong_group: fetch a ring at least as new as the refusing group's,
//     asking agents of other groups first, and retry at the new owner;
//   - stale_ring (the group is behind the client's epoch): back off, retry,
//     refresh in case the client's ring is the odd one;
//   - no member of the owner group accepts a connection: refresh (gossip
//     may list members the cached ring does not) before backing off.
//   - key_moving (a ring change is handing the key to another group):
//     back off and retry at the same leader; once the hand-off is over it
//     serves the key again or answers wrong_group.
//
// A refresh never installs a ring older than the one in use. Ring epoch 0
// is a standalone group: every key goes to it, no epoch is sent, and the
// seeds count as its members. Owner and RingEpoch show the routing; Ring
// fetches the ring with gossip's view of the members.
//
// # Transport
//
// Get, put and delete travel on the KV stream (Config.Transport, docs/api.md):
// two long-lived connections per agent, upgraded from HTTP on the agent's
// port, each carrying many requests at once. A request counts as written
// once it is queued on a live connection; a connection opens only when the
// agent answers the upgrade, so an agent that accepts connections but does
// not answer (frozen) is "not reachable, nothing sent". Agents that do not
// offer the stream, the ring and management calls use HTTP.
//
// MultiGet and MultiPut split keys by owner group and run the groups in
// parallel; each group's keys travel in batches on the KV stream, a
// MultiPut batch being one Raft entry in its group. Atomicity is per key,
// not per batch, and every key gets a result of its own.
//
// # Retries within a group
//
// Writes and linearizable reads go to the group's cached leader; a
// `not_leader` answer with a hint is retried at once at the hinted leader,
// one without a hint is retried at the next address after a backoff. Stale
// reads (Stale()) are spread over all members.
//
// A call is retried only when resending it cannot apply a write twice:
//   - the agent answered not_leader, unavailable, wrong_group, stale_ring
//     or key_moving (the server guarantees nothing was applied);
//   - the request was never written to a connection (connection refused,
//     dial timeout, DNS failure): the next address is tried;
//   - the call is a read (Get, Configuration) or is idempotent by contract
//     (Join): any transport failure or server timeout is retried.
//
// Everything else ends the call. In particular a write whose request was
// written and then got no answer (connection reset, per-attempt timeout,
// the caller's deadline) or got the agent's `timeout` code returns an error
// matching ErrTimeout: THE WRITE MAY OR MAY NOT HAVE BEEN APPLIED. Re-read
// the key before deciding to write again. The agent that left it
// unanswered is not where calls start for three RequestTimeouts or until it
// answers again (it may be frozen), and the ring is fetched again.
//
// A frozen or cut-off agent does not close its connections, so the client
// asks: a stream connection with requests in flight that has been silent
// for a third of Config.LivenessTimeout is pinged, and one whose ping goes
// unanswered for LivenessTimeout (750 ms) is given up, its requests ending
// as on a dropped connection. For a moment after, leader hints naming that
// agent are not followed (its peers may not have noticed yet): a frozen
// leader costs about what a killed one does, its group's election.
//
// The context passed to every call bounds the whole call, retries and
// backoffs included; Config.RequestTimeout bounds each attempt. A call
// whose next backoff would outlast the context's deadline gives up at once
// with the last error it saw.
//
// # Errors
//
// Every error can be tested with errors.Is against the Err* values of this
// package; an agent's answer is an *Error (errors.As) carrying the wire
// code, message and, for not_leader, the leader hint; a failed
// compare-and-swap is a *CASError carrying the key's current version.
package kvclient
