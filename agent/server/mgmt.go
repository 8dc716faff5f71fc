package server

import (
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

func (s *Server) join(c *gin.Context) {
	var req wire.JoinRequest
	if !s.decode(c, &req) {
		return
	}
	ctx, cancel, ok := s.requestContext(c)
	if !ok {
		return
	}
	defer cancel()
	idx, err := s.node.Join(ctx, req)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, wire.IndexResult{Index: idx})
}

func (s *Server) remove(c *gin.Context) {
	var req wire.NodeRequest
	if !s.decode(c, &req) {
		return
	}
	ctx, cancel, ok := s.requestContext(c)
	if !ok {
		return
	}
	defer cancel()
	idx, err := s.node.Remove(ctx, req.ID)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, wire.IndexResult{Index: idx})
}

func (s *Server) transfer(c *gin.Context) {
	var req wire.NodeRequest
	if !s.decode(c, &req) {
		return
	}
	ctx, cancel, ok := s.requestContext(c)
	if !ok {
		return
	}
	defer cancel()
	if err := s.node.TransferLeadership(ctx, req.ID); err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "transferred"})
}
