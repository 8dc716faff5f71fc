package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/carpkv/carpkv/kvclient/wire"
)

func (s *Server) self(c *gin.Context) {
	info := s.node.Self()
	info.Version = s.version
	c.JSON(http.StatusOK, info)
}

func (s *Server) configuration(c *gin.Context) {
	cfg, err := s.node.Configuration()
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, cfg)
}

func (s *Server) ready(c *gin.Context) {
	if err := s.node.Ready(); err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// decode reads a small JSON body strictly: unknown fields are refused so a
// typo is an error, not a silent default.
func (s *Server) decode(c *gin.Context, v any) bool {
	dec := json.NewDecoder(io.LimitReader(c.Request.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && err != io.EOF {
		failCode(c, wire.CodeInvalidArgument, "malformed JSON body: "+err.Error())
		return false
	}
	return true
}

// command builds the handler of a management call: decode the JSON body
// into Req, run do under the request's deadline, answer its result or its
// error.
func command[Req any](s *Server, do func(ctx context.Context, req Req) (any, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req Req
		if !s.decode(c, &req) {
			return
		}
		ctx, cancel, ok := s.requestContext(c)
		if !ok {
			return
		}
		defer cancel()
		out, err := do(ctx, req)
		if err != nil {
			fail(c, err)
			return
		}
		c.JSON(http.StatusOK, out)
	}
}

func (s *Server) join(ctx context.Context, req wire.JoinRequest) (any, error) {
	idx, err := s.node.Join(ctx, req)
	return wire.IndexResult{Index: idx}, err
}

func (s *Server) remove(ctx context.Context, req wire.NodeRequest) (any, error) {
	idx, err := s.node.Remove(ctx, req.ID)
	return wire.IndexResult{Index: idx}, err
}

func (s *Server) transfer(ctx context.Context, req wire.NodeRequest) (any, error) {
	return gin.H{"status": "transferred"}, s.node.TransferLeadership(ctx, req.ID)
}
