package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// The ring change endpoints (docs/api.md "Ring changes"): the operator's
// start and status calls, and the calls between agents that move keys.

// maxImportBody bounds an import: an exporter sends about a MiB of
// records per import, plus at most one record of the largest value.
const maxImportBody = 4 << 20

// exportGrace is added to an export's budget for its last imports.
const exportGrace = 20 * time.Second

func (s *Server) noCluster(c *gin.Context) bool {
	if s.cluster == nil {
		failCode(c, wire.CodeUnavailable, "this agent runs without a cluster: no ring changes")
		return true
	}
	return false
}

func (s *Server) startChange(ctx context.Context, req wire.RingChangeRequest) (any, error) {
	if s.cluster == nil {
		return nil, &wire.Error{Code: wire.CodeUnavailable, Message: "this agent runs without a cluster: no ring changes"}
	}
	return s.cluster.StartChange(ctx, req)
}

func (s *Server) changeStatus(c *gin.Context) {
	if s.noCluster(c) {
		return
	}
	ctx, cancel, ok := s.requestContext(c)
	if !ok {
		return
	}
	defer cancel()
	ans, err := s.cluster.ChangeStatus(ctx)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, ans)
}

func (s *Server) moveState(c *gin.Context) {
	st, err := s.node.MoveState()
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, st)
}

func (s *Server) moveStep(ctx context.Context, req wire.MoveStepRequest) (any, error) {
	return s.node.MoveStep(ctx, req)
}

// moveExport runs one export call; it may take its budget and then the
// imports in flight, so it has a deadline of its own.
func (s *Server) moveExport(c *gin.Context) {
	if s.noCluster(c) {
		return
	}
	var req wire.MoveExportRequest
	if !s.decode(c, &req) {
		return
	}
	budget := time.Duration(req.Budget) * time.Millisecond
	if budget <= 0 || budget > 10*time.Second {
		budget = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), budget+exportGrace)
	defer cancel()
	res, err := s.cluster.Export(ctx, req)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}

// moveImport commits an encoded import (binary) in this group.
func (s *Server) moveImport(c *gin.Context) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxImportBody))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		failCode(c, wire.CodeTooLarge, "import body over 4 MiB")
		return
	case err != nil:
		failCode(c, wire.CodeInvalidArgument, "reading the import body: "+err.Error())
		return
	}
	ctx, cancel, ok := s.requestContext(c)
	if !ok {
		return
	}
	defer cancel()
	n, done, err := s.node.Import(ctx, body)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"imported": n, "done": done})
}
