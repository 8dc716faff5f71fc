package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/carpkv/carpkv/agent/store"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// key extracts the key from the escaped path, so that any byte string,
// '/' and '%' included, round-trips through url.PathEscape.
func (s *Server) key(c *gin.Context) ([]byte, bool) {
	raw := strings.TrimPrefix(c.Request.URL.EscapedPath(), wire.KVPrefix)
	k, err := url.PathUnescape(raw)
	switch {
	case err != nil:
		failCode(c, wire.CodeInvalidArgument, "key is not valid percent-encoding: "+err.Error())
		return nil, false
	}
	if e := s.checkKey([]byte(k)); e != nil {
		fail(c, e)
		return nil, false
	}
	return []byte(k), true
}

// checkKey and valueTooLarge are the KV API's bounds (invariant 6), for
// HTTP and the KV stream alike.
func (s *Server) checkKey(k []byte) *wire.Error {
	switch {
	case len(k) == 0:
		return &wire.Error{Code: wire.CodeInvalidArgument, Message: "empty key"}
	case len(k) > s.limits.MaxKeyBytes:
		return &wire.Error{Code: wire.CodeTooLarge, Message: fmt.Sprintf("key is %d bytes; the limit is %d", len(k), s.limits.MaxKeyBytes)}
	}
	return nil
}

func (s *Server) valueTooLarge() *wire.Error {
	return &wire.Error{Code: wire.CodeTooLarge, Message: fmt.Sprintf("value is over the limit of %d bytes", s.limits.MaxValueBytes)}
}

// apply applies cmd through Raft; a refusal by the state machine (CAS,
// not found, ownership) is its error.
func (s *Server) apply(ctx context.Context, cmd store.Command) (*store.Result, error) {
	res, err := s.node.Apply(ctx, cmd)
	if err == nil && res.Err != nil {
		return nil, res.Err
	}
	return res, err
}

func (s *Server) get(c *gin.Context) {
	key, ok := s.key(c)
	if !ok {
		return
	}
	stale := false
	if v := c.Query(wire.QueryStale); v != "" {
		if v != "true" && v != "false" {
			failCode(c, wire.CodeInvalidArgument, "stale must be true or false")
			return
		}
		stale = v == "true"
	}
	epoch, ok := ringEpoch(c)
	if !ok {
		return
	}
	ctx, cancel, ok := s.requestContext(c)
	if !ok {
		return
	}
	defer cancel()
	value, version, index, err := s.node.Get(ctx, key, stale, epoch)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header(wire.HeaderVersion, wire.FormatUint(version))
	c.Header(wire.HeaderIndex, wire.FormatUint(index))
	c.Data(http.StatusOK, "application/octet-stream", value)
}

func (s *Server) put(c *gin.Context) {
	key, ok := s.key(c)
	if !ok {
		return
	}
	cmd := store.Command{Op: store.OpPut, Key: key}
	if !s.casParam(c, &cmd) {
		return
	}
	// Read one byte past the limit to tell "too large" from "exactly at
	// the limit" without trusting Content-Length.
	body := http.MaxBytesReader(c.Writer, c.Request.Body, int64(s.limits.MaxBodyBytes))
	value, err := io.ReadAll(io.LimitReader(body, int64(s.limits.MaxValueBytes)+1))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe) || len(value) > s.limits.MaxValueBytes:
		fail(c, s.valueTooLarge())
		return
	case err != nil:
		failCode(c, wire.CodeInvalidArgument, "reading body: "+err.Error())
		return
	}
	cmd.Value = value
	s.write(c, cmd)
}

func (s *Server) del(c *gin.Context) {
	key, ok := s.key(c)
	if !ok {
		return
	}
	cmd := store.Command{Op: store.OpDelete, Key: key}
	if s.casParam(c, &cmd) {
		s.write(c, cmd)
	}
}

func (s *Server) casParam(c *gin.Context, cmd *store.Command) bool {
	v, present := c.GetQuery(wire.QueryCAS)
	if !present {
		return true
	}
	n, err := wire.ParseUint(v)
	if err != nil {
		failCode(c, wire.CodeInvalidArgument, "cas must be a version number (0 = key absent)")
		return false
	}
	cmd.HasCAS, cmd.Expect = true, n
	return true
}

// ringEpoch reads the client's ring epoch from the request header (absent:
// 0, the client routes without a ring).
func ringEpoch(c *gin.Context) (uint64, bool) {
	h := c.GetHeader(wire.HeaderRingEpoch)
	if h == "" {
		return 0, true
	}
	e, err := wire.ParseUint(h)
	if err != nil {
		failCode(c, wire.CodeInvalidArgument, wire.HeaderRingEpoch+" must be a ring epoch number")
		return 0, false
	}
	return e, true
}

func (s *Server) write(c *gin.Context, cmd store.Command) {
	var ok bool
	if cmd.RingEpoch, ok = ringEpoch(c); !ok {
		return
	}
	ctx, cancel, ok := s.requestContext(c)
	if !ok {
		return
	}
	defer cancel()
	res, err := s.apply(ctx, cmd)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header(wire.HeaderVersion, wire.FormatUint(res.Version))
	c.Header(wire.HeaderIndex, wire.FormatUint(res.Index))
	c.JSON(http.StatusOK, wire.WriteResult{Version: res.Version, Index: res.Index})
}
