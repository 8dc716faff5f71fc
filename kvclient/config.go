package kvclient

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// Config configures a Client. A zero field means "the default" (see
// DefaultConfig); only Addrs is required.
type Config struct {
	// Addrs are host:port addresses of agents' HTTP APIs, of any group:
	// the seeds the Client fetches the ring from (GET /v1/ring) and routes
	// every key by. Any subset of the agents works; more than one survives
	// the loss of an agent. Management calls (Configuration, Join, Remove,
	// TransferLeadership) go to the group of these agents, so give agents
	// of one group for those. A leading "http://" is accepted and dropped.
	Addrs []string

	// HTTPClient sends every HTTP request: management calls, the ring, and
	// get, put and delete when they do not travel on the KV stream (see
	// Transport). Nil: the Client builds its own, with
	// a Transport tuned for many concurrent callers (keep-alives, up to
	// MaxIdleConnsPerHost idle connections per agent, no proxy), and
	// closes its idle connections on Close. A client given here is used as
	// is and never closed; its Timeout should be zero (contexts and
	// RequestTimeout set the deadlines) and it should not follow
	// redirects, which would resend writes. If its Transport is not an
	// *http.Transport the Client cannot see whether a request was written,
	// so it treats every failure but a dial error as "maybe applied".
	HTTPClient *http.Client

	// CallTimeout is the deadline given to a call whose context has none,
	// so that no call retries forever (DESIGN invariant 5). Default 10s.
	CallTimeout time.Duration

	// RequestTimeout bounds one attempt: one HTTP exchange with one agent.
	// The context of each call bounds the whole call. Default 2s.
	RequestTimeout time.Duration

	// LivenessTimeout is how long a KV stream connection may leave a
	// liveness ping unanswered before the Client declares it dead. A
	// connection with requests in flight that has received nothing for
	// LivenessTimeout/3 is pinged; the agent answers a ping at once from
	// the connection's reader, whatever its Raft group is doing, so only
	// a frozen or cut-off agent (or a starved one: see docs/design.md)
	// misses it. The requests in flight then end as an agent that dropped
	// the connection ends them (a write's outcome is unknown, a read is
	// retried elsewhere), and new calls go to the other members at once
	// rather than after RequestTimeout: a frozen leader costs its group's
	// clients about what a dead one does. Default 750ms; negative turns
	// the pings off (a silent connection is then given up after
	// RequestTimeout).
	LivenessTimeout time.Duration

	// DialTimeout bounds opening a connection to one agent, so that a dead
	// address costs little before the next is tried. Used only when
	// HTTPClient is nil. Default 1s.
	DialTimeout time.Duration

	// MaxAttempts bounds the attempts of one call, the first included; 1
	// disables retries. Default 0: no bound but the call's deadline, so a
	// call rides out a leader election that lasts as long as its context
	// allows.
	MaxAttempts int

	// BackoffMin and BackoffMax bound the wait before a retry: it starts at
	// BackoffMin, doubles with each wait up to BackoffMax and is jittered
	// (uniform in [d/2, d]) so that clients do not retry in lockstep.
	// Following a leader hint and moving on after a dial error do not
	// wait, until every address has failed in a row. Defaults 20ms and 1s.
	BackoffMin time.Duration
	BackoffMax time.Duration

	// MaxIdleConnsPerHost is the number of idle connections kept per agent.
	// It should be at least the number of concurrent callers, or
	// connections are closed and reopened under load. Used only when
	// HTTPClient is nil. Default 128.
	MaxIdleConnsPerHost int

	// MaxResponseBytes bounds the body read from one response; a larger
	// value fails with ErrTooLarge instead of exhausting memory. It must be
	// at least the agents' --max-value-bytes. Default 64 MiB.
	MaxResponseBytes int64

	// BatchConcurrency is how many keys of one group a MultiGet or
	// MultiPut has in flight at once when it sends them one by one:
	// with an agent that does not speak the KV stream, and for the keys a
	// batch cannot carry (the ring moved, a key in hand-off, a pair over
	// wire.BatchBytes). Groups run in parallel. Default 16.
	BatchConcurrency int

	// Transport is how get, put and delete travel: TransportStream (the
	// default) sends them over a few long-lived binary connections per
	// agent, many requests in flight on each (docs/api.md, "KV stream"),
	// and falls back to HTTP for an agent that does not offer it;
	// TransportHTTP sends one HTTP/1.1 request per operation through
	// HTTPClient. Management calls and the ring always use HTTP.
	Transport string

	// Logger receives debug records of retries and leader changes. Nil
	// discards them.
	Logger *slog.Logger
}

// Defaults of Config, also what a zero field means.
const (
	DefaultRequestTimeout      = 2 * time.Second
	DefaultDialTimeout         = time.Second
	DefaultLivenessTimeout     = 750 * time.Millisecond
	DefaultMaxAttempts         = 0 // bounded by the deadline only
	DefaultCallTimeout         = 10 * time.Second
	DefaultBackoffMin          = 20 * time.Millisecond
	DefaultBackoffMax          = time.Second
	DefaultMaxIdleConnsPerHost = 128
	DefaultMaxResponseBytes    = 64 << 20
	DefaultBatchConcurrency    = 16
)

// DefaultConfig returns a Config with every default filled in and no
// addresses.
func DefaultConfig() Config {
	return Config{
		RequestTimeout:      DefaultRequestTimeout,
		DialTimeout:         DefaultDialTimeout,
		LivenessTimeout:     DefaultLivenessTimeout,
		MaxAttempts:         DefaultMaxAttempts,
		CallTimeout:         DefaultCallTimeout,
		BackoffMin:          DefaultBackoffMin,
		BackoffMax:          DefaultBackoffMax,
		MaxIdleConnsPerHost: DefaultMaxIdleConnsPerHost,
		MaxResponseBytes:    DefaultMaxResponseBytes,
		BatchConcurrency:    DefaultBatchConcurrency,
	}
}

// withDefaults returns cfg with zero fields replaced by their defaults and
// addresses normalised.
func (cfg Config) withDefaults() Config {
	d := DefaultConfig()
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = d.RequestTimeout
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = d.DialTimeout
	}
	if cfg.LivenessTimeout == 0 {
		cfg.LivenessTimeout = d.LivenessTimeout
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = d.CallTimeout
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = d.BackoffMin
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = max(d.BackoffMax, cfg.BackoffMin)
	}
	if cfg.MaxIdleConnsPerHost == 0 {
		cfg.MaxIdleConnsPerHost = d.MaxIdleConnsPerHost
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = d.MaxResponseBytes
	}
	if cfg.BatchConcurrency == 0 {
		cfg.BatchConcurrency = d.BatchConcurrency
	}
	addrs := make([]string, len(cfg.Addrs))
	for i, a := range cfg.Addrs {
		addrs[i] = normalizeAddr(a)
	}
	cfg.Addrs = addrs
	return cfg
}

// Transports for Config.Transport.
const (
	TransportStream = "stream"
	TransportHTTP   = "http"
)

// normalizeAddr accepts "host:port" and "http://host:port/".
func normalizeAddr(a string) string {
	a = strings.TrimSpace(a)
	a = strings.TrimPrefix(a, "http://")
	return strings.TrimSuffix(a, "/")
}

// Validate reports the first invalid field, by name. Zero fields are valid:
// they mean the default.
func (cfg Config) Validate() error {
	if len(cfg.Addrs) == 0 {
		return configError("Addrs", "at least one agent address is required")
	}
	seen := make(map[string]bool, len(cfg.Addrs))
	for i, a := range cfg.Addrs {
		if err := validateAddr(a); err != nil {
			return configError(fmt.Sprintf("Addrs[%d]", i), err.Error())
		}
		n := normalizeAddr(a)
		if seen[n] {
			return configError(fmt.Sprintf("Addrs[%d]", i), fmt.Sprintf("%q is listed twice", a))
		}
		seen[n] = true
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"RequestTimeout", cfg.RequestTimeout},
		{"DialTimeout", cfg.DialTimeout},
		{"BackoffMin", cfg.BackoffMin},
		{"BackoffMax", cfg.BackoffMax},
	} {
		if f.d < 0 {
			return configError(f.name, fmt.Sprintf("must not be negative, got %v", f.d))
		}
	}
	if cfg.BackoffMin > 0 && cfg.BackoffMax > 0 && cfg.BackoffMax < cfg.BackoffMin {
		return configError("BackoffMax", fmt.Sprintf("%v is below BackoffMin %v", cfg.BackoffMax, cfg.BackoffMin))
	}
	if cfg.CallTimeout < 0 {
		return configError("CallTimeout", fmt.Sprintf("must not be negative, got %v", cfg.CallTimeout))
	}
	if cfg.MaxAttempts < 0 {
		return configError("MaxAttempts", fmt.Sprintf("must not be negative, got %d", cfg.MaxAttempts))
	}
	if cfg.MaxIdleConnsPerHost < 0 {
		return configError("MaxIdleConnsPerHost", fmt.Sprintf("must not be negative, got %d", cfg.MaxIdleConnsPerHost))
	}
	if cfg.MaxResponseBytes < 0 {
		return configError("MaxResponseBytes", fmt.Sprintf("must not be negative, got %d", cfg.MaxResponseBytes))
	}
	switch cfg.Transport {
	case "", TransportStream, TransportHTTP:
	default:
		return configError("Transport", fmt.Sprintf("%q is not %q or %q", cfg.Transport, TransportStream, TransportHTTP))
	}
	if cfg.BatchConcurrency < 0 {
		return configError("BatchConcurrency", fmt.Sprintf("must not be negative, got %d", cfg.BatchConcurrency))
	}
	return nil
}

func validateAddr(a string) error {
	n := normalizeAddr(a)
	if n == "" {
		return fmt.Errorf("empty address")
	}
	if strings.Contains(n, "://") {
		return fmt.Errorf("%q: only plain http (host:port) is supported", a)
	}
	_, port, err := net.SplitHostPort(n)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", a, err)
	}
	if port == "" {
		return fmt.Errorf("%q has no port", a)
	}
	return nil
}

func configError(field, msg string) error {
	return invalidArgf("kvclient: Config.%s: %s", field, msg)
}
