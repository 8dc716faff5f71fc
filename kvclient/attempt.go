package kvclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// route says which agents may serve a call.
type route int

const (
	routeLeader route = iota // the group's leader: writes, linearizable reads, membership
	routeAny                 // any member: stale reads
)

// call is one logical request, sent in one or more attempts. A KV call
// sets stream; its method, path, query and body are derived from it for
// an attempt over HTTP (httpForm).
type call struct {
	op      string // for errors and logs, e.g. `put "user/42"`
	method  string
	path    string // unescaped path
	rawPath string // escaped path when it differs (KV keys), else ""
	query   url.Values
	body    []byte
	json    bool // body is JSON
	route   route
	// idempotent: sending the request twice has the effect of sending it
	// once, so it may be resent after it might have reached an agent.
	idempotent bool
	// routed: the call is sent to its key's owner group, and is rerouted
	// by the Client when the ring may be wrong (wrong_group, stale_ring,
	// no member reachable). Management calls are not.
	routed bool
	// epoch is the ring epoch the call was routed by, sent in
	// HeaderRingEpoch when positive; set before each routing.
	epoch uint64
	// stream is a KV call (get, put, delete) as a stream request, sent
	// that way when the agent speaks it; nil: a management call, HTTP
	// only. Epoch and timeout are filled in per attempt.
	stream *wire.StreamRequest
	// attempts counts the HTTP exchanges of the whole call, over every
	// group it was routed to (Config.MaxAttempts bounds it).
	attempts int
}

// reply is a 2xx answer.
type reply struct {
	addr   string
	header http.Header // HTTP only
	body   []byte
	// streamed: the answer came over the KV stream, with the key's version
	// here rather than in a header or body.
	streamed bool
	version  uint64
}

const (
	// maxErrorBody bounds what is read of a failed response.
	maxErrorBody = 64 << 10
	userAgent    = "carpkv-kvclient"
)

// attempt performs one HTTP exchange with one agent. It returns the reply
// of a 2xx answer, an *Error for an agent's error answer, a
// *transportError when no answer came, or another error (response too
// large).
func (c *Client) attempt(ctx context.Context, addr string, cl *call) (*reply, error) {
	if cl.stream != nil {
		if c.streams != nil {
			if rep, err, ok := c.streamAttempt(ctx, addr, cl); ok {
				return rep, err
			}
		}
		if op := cl.stream.Op; op == wire.StreamMultiPut || op == wire.StreamMultiGet {
			return nil, errBatchNoStream // nothing sent
		}
		if cl.method == "" {
			cl.httpForm()
		}
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()

	// Whether the request may have reached the agent decides whether a
	// write that got no answer may have been applied (DESIGN invariant 5:
	// never report as failed a write that may have been applied). A request
	// is "maybe sent" once a connection was obtained for it, unless writing
	// on that connection failed. WroteRequest may fire after Do returns, so
	// an unreported write counts as sent: that errs on the safe side.
	var conns, writeErrs atomic.Int32
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { conns.Add(1) },
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err != nil {
				writeErrs.Add(1)
			}
		},
	})

	q := url.Values{}
	for k, v := range cl.query {
		q[k] = v
	}
	if d := serverTimeout(actx); d > 0 {
		q.Set(wire.QueryTimeout, d.String())
	}
	u := &url.URL{Scheme: "http", Host: addr, Path: cl.path, RawPath: cl.rawPath, RawQuery: q.Encode()}

	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(actx, cl.method, u.String(), body)
	if err != nil {
		return nil, invalidArgf("kvclient: %s: %v", cl.op, err)
	}
	req.Header.Set("User-Agent", userAgent)
	if cl.epoch > 0 {
		// The group refuses the key (wrong_group, stale_ring) unless it
		// owns it under this epoch: DESIGN invariant 3.
		req.Header.Set(wire.HeaderRingEpoch, wire.FormatUint(cl.epoch))
	}
	if cl.json {
		req.Header.Set("Content-Type", "application/json")
	} else if cl.body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		// The URL is in the message already (op, agent): keep the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		sent := conns.Load() > writeErrs.Load()
		if !c.traced {
			sent = !isDialError(err)
		}
		return nil, c.noAnswer(cl, addr, sent, actx.Err() != nil, err)
	}
	defer func() {
		// Drain what is left (bounded) so the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, maxErrorBody)
		resp.Body.Close()
	}()

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if resp.ContentLength > c.cfg.MaxResponseBytes {
			return nil, fmt.Errorf("kvclient: %s: %w: response of %d bytes over MaxResponseBytes %d",
				cl.op, ErrTooLarge, resp.ContentLength, c.cfg.MaxResponseBytes)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
		if err != nil {
			// The status says the request was served, but the answer is
			// lost: for a write the version is unknown, for a read retry.
			return nil, c.noAnswer(cl, addr, true, actx.Err() != nil, err)
		}
		if int64(len(b)) > c.cfg.MaxResponseBytes {
			return nil, fmt.Errorf("kvclient: %s: %w: response over MaxResponseBytes %d",
				cl.op, ErrTooLarge, c.cfg.MaxResponseBytes)
		}
		return &reply{addr: addr, header: resp.Header, body: b}, nil
	}

	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var eb wire.ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != nil && eb.Error.Code != "" {
		return nil, newError(cl.op, addr, eb.Error)
	}
	// Not the protocol (a proxy, a wrong port): not retried, reported as is.
	return nil, newError(cl.op, addr, &wire.Error{
		Code:    wire.CodeInternal,
		Message: fmt.Sprintf("unexpected HTTP %d answer outside the protocol: %.200q", resp.StatusCode, b),
	})
}

// noAnswer classifies an attempt without an answer. deadline says the
// attempt's context ended (its own timeout or the caller's).
func (c *Client) noAnswer(cl *call, addr string, sent, deadline bool, cause error) *transportError {
	kind := ErrUnavailable
	switch {
	case !sent:
	case !cl.idempotent:
		kind = ErrTimeout // a write may have been applied
	case deadline:
		kind = ErrTimeout
	}
	return &transportError{op: cl.op, addr: addr, sent: sent, kind: kind, cause: cause, attemptTimedOut: sent && deadline}
}

// serverTimeout is the deadline asked of the agent: a little less than what
// is left of the attempt, so that the agent answers `timeout` (and the
// connection stays usable) before the client gives up on the exchange.
func serverTimeout(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	left := time.Until(dl)
	d := left - left/10
	d = d.Truncate(time.Millisecond)
	if d < time.Millisecond {
		return time.Millisecond
	}
	return d
}

// isDialError reports a failure to open a connection: the request was not
// sent.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}
