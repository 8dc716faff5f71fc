// Package server is the agent's HTTP API (Gin): the KV endpoints, the
// management endpoints and /metrics, over an agent/node.Node. The wire
// format is kvclient/wire; docs/api.md describes it.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/carpkv/carpkv/agent/config"
	"github.com/carpkv/carpkv/agent/node"
	"github.com/carpkv/carpkv/kvclient/wire"
)

const codeKey = "carpkv.code"

// Server serves one node's HTTP API.
type Server struct {
	node     *node.Node
	limits   config.Limits
	version  string
	cluster  Cluster // nil: no gossip view, no ring changes
	log      *slog.Logger
	engine   *gin.Engine
	srv      *http.Server
	inflight chan struct{}
	streams  streams // upgraded KV stream connections (stream.go)

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// New builds the server; Serve starts it. version is reported by
// /v1/agent/self; cluster provides the gossip view for /v1/ring and
// /v1/gossip/members.
func New(n *node.Node, limits config.Limits, version string, cluster Cluster, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{
		node:     n,
		limits:   limits,
		version:  version,
		cluster:  cluster,
		log:      log,
		engine:   gin.New(),
		inflight: make(chan struct{}, limits.MaxInFlight),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carpkv_http_requests_total", Help: "HTTP requests by operation and outcome code.",
		}, []string{"op", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "carpkv_http_request_seconds", Help: "HTTP request latency by operation and outcome code.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"op", "code"}),
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.requests, s.latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.Register(reg)

	e := s.engine
	e.Use(gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, rec any) {
		s.log.Error("panic in handler", "panic", rec, "path", c.Request.URL.Path)
		failCode(c, wire.CodeInternal, "internal error")
	}))
	e.HandleMethodNotAllowed = true
	e.NoRoute(func(c *gin.Context) { failCode(c, wire.CodeNotFound, "no such endpoint: "+c.Request.URL.Path) })
	e.NoMethod(func(c *gin.Context) {
		failCode(c, wire.CodeInvalidArgument, c.Request.Method+" is not supported on "+c.Request.URL.Path)
	})

	kv := e.Group(wire.KVPrefix, s.observe, s.limit)
	kv.GET("/*key", s.get)
	kv.PUT("/*key", s.put)
	kv.DELETE("/*key", s.del)
	// Not under the KV group: a stream is not one request, and each of its
	// requests takes an in-flight slot of its own.
	e.GET(wire.PathKVStream, s.observe, s.kvStream)

	m := e.Group("", s.observe)
	m.GET(wire.PathAgentSelf, s.self)
	m.GET(wire.PathRaftConfiguration, s.configuration)
	m.POST(wire.PathRaftJoin, command(s, s.join))
	m.POST(wire.PathRaftRemove, command(s, s.remove))
	m.POST(wire.PathTransferLeadership, command(s, s.transfer))
	m.GET(wire.PathHealth, func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	m.GET(wire.PathReady, s.ready)
	m.GET(wire.PathRing, s.ring)
	m.POST(wire.PathRing, command(s, s.setRing))
	m.GET(wire.PathGossipMembers, s.members)
	m.POST(wire.PathRingChange, command(s, s.startChange))
	m.GET(wire.PathRingChange, s.changeStatus)
	m.GET(wire.PathMoveState, s.moveState)
	m.POST(wire.PathMoveStep, command(s, s.moveStep))
	m.POST(wire.PathMoveExport, s.moveExport)
	m.POST(wire.PathMoveImport, s.moveImport)
	e.GET(wire.PathMetrics, gin.WrapH(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))

	s.srv = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	return s
}

// EnablePprof serves Go's profiler under /debug/pprof/ (CPU, heap,
// allocations, goroutines, traces). Off by default: it shows internals to
// anyone who reaches the port, and a profile in progress costs CPU.
func (s *Server) EnablePprof() {
	g := s.engine.Group("/debug/pprof")
	g.GET("/", gin.WrapF(pprof.Index))
	g.GET("/cmdline", gin.WrapF(pprof.Cmdline))
	g.GET("/profile", gin.WrapF(pprof.Profile))
	g.GET("/symbol", gin.WrapF(pprof.Symbol))
	g.GET("/trace", gin.WrapF(pprof.Trace))
	g.GET("/:name", func(c *gin.Context) { pprof.Handler(c.Param("name")).ServeHTTP(c.Writer, c.Request) })
}

// Handler is the HTTP handler, for tests.
func (s *Server) Handler() http.Handler { return s.engine }

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting requests and waits for those in flight, over
// HTTP and on KV streams.
func (s *Server) Shutdown(ctx context.Context) error {
	return errors.Join(s.srv.Shutdown(ctx), s.streams.shutdown(ctx))
}

// observe records every request's outcome code and latency by operation.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	code, _ := c.Get(codeKey)
	codeStr, _ := code.(string)
	if codeStr == "" {
		codeStr = "ok"
	}
	var op string
	switch fp := c.FullPath(); {
	case strings.HasPrefix(fp, wire.KVPrefix):
		op = "kv " + c.Request.Method
	case fp == "":
		op = "unmatched"
	default:
		op = c.Request.Method + " " + fp
	}
	s.record(op, codeStr, start)
}

// record counts one request's outcome and latency, over HTTP or a stream.
func (s *Server) record(op, code string, start time.Time) {
	s.requests.WithLabelValues(op, code).Inc()
	s.latency.WithLabelValues(op, code).Observe(time.Since(start).Seconds())
}

// limit bounds concurrent KV requests (invariant 6): excess requests are
// refused at once with unavailable rather than queued without bound.
func (s *Server) limit(c *gin.Context) {
	select {
	case s.inflight <- struct{}{}:
		defer func() { <-s.inflight }()
		c.Next()
	default:
		failCode(c, wire.CodeUnavailable, "too many requests in flight")
	}
}

// requestContext bounds a request by the server's timeout, lowered by the
// client's ?timeout= if given.
func (s *Server) requestContext(c *gin.Context) (context.Context, context.CancelFunc, bool) {
	var asked time.Duration
	if t := c.Query("timeout"); t != "" {
		ct, err := time.ParseDuration(t)
		if err != nil || ct <= 0 {
			failCode(c, wire.CodeInvalidArgument, "timeout: "+strconv.Quote(t)+" is not a positive Go duration")
			return nil, nil, false
		}
		asked = ct
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.deadline(asked))
	return ctx, cancel, true
}

// deadline is the server side of a request whose client asked for at most
// asked (0: no wish): the agent's --request-timeout, never more.
func (s *Server) deadline(asked time.Duration) time.Duration {
	if asked > 0 {
		return min(s.limits.RequestTimeout, asked)
	}
	return s.limits.RequestTimeout
}
