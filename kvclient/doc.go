// Package kvclient is the Go client of carpkv. Applications import it
// without the server's dependencies: it needs the standard library and
// kvclient/wire only.
//
//	c, err := kvclient.New(kvclient.Config{Addrs: []string{"10.0.0.1:7101", "10.0.0.2:7101"}})
//	if err != nil { ... }
//	defer c.Close()
//	ver, err := c.Put(ctx, []byte("user/42"), []byte(`{"name":"ada"}`))
//	v, err := c.Get(ctx, []byte("user/42"))
//
// A Client is safe for concurrent use by many goroutines and should be
// shared: it keeps a pool of connections and the address of the leader it
// last talked to.
//
// # Routing and retries
//
// Today a Client talks to one Raft group through any of its agents' HTTP
// addresses (a later version routes keys across groups with CARP). Writes
// and linearizable reads go to the cached leader; a `not_leader` answer
// with a hint is retried at once at the hinted leader, one without a hint
// is retried at the next address after a backoff. Stale reads (Stale())
// are spread over all addresses.
//
// A call is retried only when resending it cannot apply a write twice:
//   - the agent answered not_leader, unavailable or stale_ring (the server
//     guarantees nothing was applied);
//   - the request was never written to a connection (connection refused,
//     dial timeout, DNS failure): the next address is tried;
//   - the call is a read (Get, Configuration) or is idempotent by contract
//     (Join): any transport failure or server timeout is retried.
//
// Everything else ends the call. In particular a write whose request was
// written and then got no answer (connection reset, per-attempt timeout,
// the caller's deadline) or got the agent's `timeout` code returns an error
// matching ErrTimeout: THE WRITE MAY OR MAY NOT HAVE BEEN APPLIED. Re-read
// the key before deciding to write again.
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
