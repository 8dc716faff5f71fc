package server

import (
	"context"
	"errors"

	"github.com/gin-gonic/gin"

	"github.com/carpkv/carpkv/agent/node"
	"github.com/carpkv/carpkv/agent/store"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// toWire is the one place where the agent's errors become wire codes.
func toWire(err error) *wire.Error {
	var (
		nl  *node.NotLeaderError
		cas *store.CASError
		re  *store.RingError
		we  *wire.Error
	)
	switch {
	case errors.As(err, &we):
		return we
	case errors.As(err, &nl):
		e := &wire.Error{Code: wire.CodeNotLeader, Message: nl.Error()}
		if nl.LeaderID != "" {
			e.Leader = &wire.Leader{ID: nl.LeaderID, HTTP: nl.LeaderHTTP}
		}
		return e
	case errors.As(err, &re):
		code := wire.CodeWrongGroup
		switch {
		case errors.Is(err, store.ErrStaleRing):
			code = wire.CodeStaleRing
		case errors.Is(err, store.ErrKeyMoving):
			code = wire.CodeKeyMoving
		}
		return &wire.Error{Code: code, Message: err.Error(), Epoch: re.Epoch}
	case errors.As(err, &cas):
		return &wire.Error{Code: wire.CodeCASFailed, Message: err.Error(), Version: cas.Current}
	case errors.Is(err, store.ErrChangeInProgress):
		return &wire.Error{Code: wire.CodeRingChangeInProgress, Message: err.Error()}
	case errors.Is(err, store.ErrMoveNotReady):
		return &wire.Error{Code: wire.CodeUnavailable, Message: err.Error()}
	case errors.Is(err, store.ErrNotFound), errors.Is(err, node.ErrNoSuchNode):
		return &wire.Error{Code: wire.CodeNotFound, Message: err.Error()}
	case errors.Is(err, node.ErrInvalid), errors.Is(err, store.ErrInvalidCommand), errors.Is(err, store.ErrNodeRemoved):
		return &wire.Error{Code: wire.CodeInvalidArgument, Message: err.Error()}
	case errors.Is(err, node.ErrUnknownOutcome), errors.Is(err, context.DeadlineExceeded):
		return &wire.Error{Code: wire.CodeTimeout, Message: err.Error()}
	case errors.Is(err, node.ErrUnavailable), errors.Is(err, store.ErrClosed), errors.Is(err, context.Canceled):
		return &wire.Error{Code: wire.CodeUnavailable, Message: err.Error()}
	}
	return &wire.Error{Code: wire.CodeInternal, Message: err.Error()}
}

// fail writes err as the error body with its status and records the code
// for the request metrics.
func fail(c *gin.Context, err error) {
	e := toWire(err)
	c.Set(codeKey, string(e.Code))
	c.AbortWithStatusJSON(e.Code.HTTPStatus(), wire.ErrorBody{Error: e})
}

func failCode(c *gin.Context, code wire.Code, msg string) {
	fail(c, &wire.Error{Code: code, Message: msg})
}
