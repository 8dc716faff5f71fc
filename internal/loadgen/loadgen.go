// Package loadgen drives a key-value store with a configurable workload and
// measures it: the op mix, key space and distribution, value size,
// concurrency, closed or open loop, warmup, and latency histograms per
// operation. It knows nothing of carpkv: the store is the KV interface, so
// the same workload runs against carpkv (carpkvctl bench) and against an
// anchor such as etcd, through an adapter in another package.
//
// # Closed and open loop
//
// Without a rate (closed loop) each worker sends its next operation as
// soon as the previous one ends, and latency is measured from the send.
//
// With a rate (open loop) operation i is due at start + i/rate whatever
// happened before; a free worker takes the next due operation, waits for
// its time if it is early, and its latency is measured from the time it
// was due, not from when a worker became free. A store that stalls so
// makes every operation due meanwhile count the stall, instead of hiding
// it (coordinated omission). Operations still waiting for a worker when
// the measured window ends are reported as missed.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// KV is the store under test. Implementations must be safe for concurrent
// use and must not keep key or value after returning (the caller reuses
// them). Every method returns nil on success; any other outcome is an
// error that Config.Classify sorts.
type KV interface {
	// Put writes value under key unconditionally.
	Put(ctx context.Context, key, value []byte) error
	// Get reads key; an absent key is an error of class NotFound.
	Get(ctx context.Context, key []byte) error
	// CAS writes value under key only if the key is still at the version
	// the implementation last saw for it (absent if it saw none); a failed
	// precondition is an error of class CASFailed. How the version is
	// known is the implementation's business, in one request per call.
	CAS(ctx context.Context, key, value []byte) error
	// Delete deletes key; an absent key is an error of class NotFound.
	Delete(ctx context.Context, key []byte) error
}

// PerWorkerKV is a KV that hands each worker its own KV to use, e.g. one
// bound to a fixed connection, as load tools pin each client to one
// connection. ForWorker is called for every worker the Runner starts
// (the preload's, then the measured phase's), with ids from 0; each KV it
// returns is used by that worker's goroutine only.
type PerWorkerKV interface {
	KV
	ForWorker(id int) KV
}

// Class is the outcome of one operation.
type Class uint8

// The outcomes. NotFound is a normal outcome for get and delete, and
// CASFailed for cas; everything else but OK is an error.
const (
	OK Class = iota
	NotFound
	CASFailed
	Unavailable // nothing was applied (no leader, unreachable, refused)
	Timeout     // no answer in time: a write's outcome is unknown
	Other
	numClasses
)

var classNames = [numClasses]string{"ok", "not_found", "cas_failed", "unavailable", "timeout", "other"}

func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Classes lists every outcome.
func Classes() []Class { return []Class{OK, NotFound, CASFailed, Unavailable, Timeout, Other} }

// IsError reports whether outcome c of op counts as an error.
func IsError(op Op, c Class) bool {
	switch c {
	case OK:
		return false
	case NotFound:
		return op != OpGet && op != OpDelete
	case CASFailed:
		return op != OpCAS
	}
	return true
}

// DefaultClassify knows only nil (OK) and context deadlines (Timeout);
// everything else is Other. Adapters supply their own.
func DefaultClassify(err error) Class {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, context.DeadlineExceeded):
		return Timeout
	}
	return Other
}

// Config is one workload. Zero fields take the defaults of DefaultConfig,
// except Duration, Ops, Rate, Warmup, Preload and OpTimeout, whose zero
// means none.
type Config struct {
	// Mix is the share of each operation. Required.
	Mix Mix `json:"mix"`
	// Keys is the size of the key space, keys 0..Keys-1. Default 10000.
	Keys int `json:"keys"`
	// KeySize is the length of every key in bytes (AppendKey), at least
	// MinKeySize(Keys). Default 16.
	KeySize int `json:"key_size"`
	// ValueSize is the length of every written value in bytes. Default 256.
	ValueSize int `json:"value_size"`
	// Dist is how keys are drawn. Default Uniform.
	Dist Dist `json:"dist"`
	// ZipfS is the Zipf exponent, > 1. Default 1.1.
	ZipfS float64 `json:"zipf_s"`
	// Concurrency is the number of workers, each one goroutine with at
	// most one operation in flight. Default 16.
	Concurrency int `json:"concurrency"`
	// Duration is the measured time, after Warmup. Duration, Ops or both
	// must be set; the run ends at the first one reached.
	Duration time.Duration `json:"duration_ns"`
	// Ops stops the run after exactly Ops measured operations.
	Ops int64 `json:"ops"`
	// Rate is the target of operations per second over all workers: open
	// loop (see the package documentation). 0: closed loop.
	Rate float64 `json:"rate"`
	// Warmup runs the workload this long before measuring; its operations
	// are not recorded.
	Warmup time.Duration `json:"warmup_ns"`
	// Preload writes every key once before the warmup.
	Preload bool `json:"preload"`
	// Seed makes the workers' op and key sequences reproducible.
	Seed uint64 `json:"seed"`
	// OpTimeout bounds each operation (its context's deadline). 0: only
	// the store's own limits.
	OpTimeout time.Duration `json:"op_timeout_ns"`
	// Classify sorts the errors of the KV. Nil: DefaultClassify.
	Classify func(error) Class `json:"-"`
}

// Defaults of Config.
const (
	DefaultKeys        = 10000
	DefaultKeySize     = 16
	DefaultValueSize   = 256
	DefaultZipfS       = 1.1
	DefaultConcurrency = 16
	DefaultDuration    = 10 * time.Second
	DefaultWarmup      = time.Second
)

// DefaultConfig is the default workload but for its Mix, which has no
// default: 10000 keys of 16 bytes drawn uniformly, 256-byte values, 16
// workers, closed loop, 1s of warmup and 10s measured.
func DefaultConfig() Config {
	return Config{
		Keys: DefaultKeys, KeySize: DefaultKeySize, ValueSize: DefaultValueSize,
		Dist: Uniform, ZipfS: DefaultZipfS, Concurrency: DefaultConcurrency,
		Duration: DefaultDuration, Warmup: DefaultWarmup,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Keys == 0 {
		c.Keys = d.Keys
	}
	if c.KeySize == 0 {
		c.KeySize = d.KeySize
	}
	if c.ValueSize == 0 {
		c.ValueSize = d.ValueSize
	}
	if c.Dist == "" {
		c.Dist = d.Dist
	}
	if c.ZipfS == 0 {
		c.ZipfS = d.ZipfS
	}
	if c.Concurrency == 0 {
		c.Concurrency = d.Concurrency
	}
	if c.Classify == nil {
		c.Classify = DefaultClassify
	}
	return c
}

// ConfigError names the invalid field of a Config.
type ConfigError struct {
	Field string // e.g. "KeySize"
	Msg   string
}

func (e *ConfigError) Error() string { return "loadgen: Config." + e.Field + ": " + e.Msg }

func configErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate reports the first invalid field. Zero fields are valid where
// they mean a default.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.Mix.Validate(); err != nil {
		return configErr("Mix", "%v", err)
	}
	switch {
	case c.Keys < 1:
		return configErr("Keys", "%d: want at least 1", c.Keys)
	case c.KeySize < MinKeySize(c.Keys):
		return configErr("KeySize", "%d bytes cannot hold %d distinct keys: want at least %d", c.KeySize, c.Keys, MinKeySize(c.Keys))
	case c.ValueSize < 0:
		return configErr("ValueSize", "%d: must not be negative", c.ValueSize)
	case c.Dist != Uniform && c.Dist != Zipf:
		return configErr("Dist", "%q: want uniform or zipf", c.Dist)
	case c.Dist == Zipf && !(c.ZipfS > 1):
		return configErr("ZipfS", "%v: want > 1", c.ZipfS)
	case c.Concurrency < 1:
		return configErr("Concurrency", "%d: want at least 1", c.Concurrency)
	case c.Duration < 0:
		return configErr("Duration", "%v: must not be negative", c.Duration)
	case c.Ops < 0:
		return configErr("Ops", "%d: must not be negative", c.Ops)
	case c.Duration == 0 && c.Ops == 0:
		return configErr("Duration", "set a duration or a number of operations")
	case c.Rate < 0:
		return configErr("Rate", "%v: must not be negative", c.Rate)
	case c.Rate > 0 && c.Rate < 0.001:
		return configErr("Rate", "%v ops/s: want at least 0.001", c.Rate)
	case c.Warmup < 0:
		return configErr("Warmup", "%v: must not be negative", c.Warmup)
	case c.OpTimeout < 0:
		return configErr("OpTimeout", "%v: must not be negative", c.OpTimeout)
	}
	return nil
}
