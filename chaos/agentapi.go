package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// The harness inspects and manages agents over their HTTP API directly
// (docs/api.md), one agent per request and no retries: it needs to see
// each member as it is, and it must not depend on the client it tests.
// Workload operations go through kvclient.

var errNotFound = errors.New("not found")

type agentAPI struct{ http *http.Client }

func (api agentAPI) do(ctx context.Context, method, addr, path, rawQuery string, body, out any) (http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := url.URL{Scheme: "http", Host: addr, Path: path, RawQuery: rawQuery}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := api.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var eb wire.ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error != nil {
			if eb.Error.Code == wire.CodeNotFound {
				return resp.Header, b, fmt.Errorf("%s %s: %w: %w", addr, path, errNotFound, eb.Error)
			}
			return resp.Header, b, fmt.Errorf("%s %s: %w", addr, path, eb.Error)
		}
		return resp.Header, b, fmt.Errorf("%s %s: HTTP %d: %.200q", addr, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.Header, b, fmt.Errorf("%s %s: %w", addr, path, err)
		}
	}
	return resp.Header, b, nil
}

func (api agentAPI) self(ctx context.Context, addr string) (wire.AgentInfo, error) {
	var info wire.AgentInfo
	_, _, err := api.do(ctx, http.MethodGet, addr, wire.PathAgentSelf, "", nil, &info)
	return info, err
}

func (api agentAPI) ready(ctx context.Context, addr string) error {
	_, _, err := api.do(ctx, http.MethodGet, addr, wire.PathReady, "", nil, nil)
	return err
}

func (api agentAPI) configuration(ctx context.Context, addr string) (wire.Configuration, error) {
	var c wire.Configuration
	_, _, err := api.do(ctx, http.MethodGet, addr, wire.PathRaftConfiguration, "", nil, &c)
	return c, err
}

func (api agentAPI) ring(ctx context.Context, addr string) (wire.Ring, error) {
	var r wire.Ring
	_, _, err := api.do(ctx, http.MethodGet, addr, wire.PathRing, "", nil, &r)
	return r, err
}

func (api agentAPI) transferLeadership(ctx context.Context, addr, to string) error {
	_, _, err := api.do(ctx, http.MethodPost, addr, wire.PathTransferLeadership, "", wire.NodeRequest{ID: to}, nil)
	return err
}

func (api agentAPI) remove(ctx context.Context, addr, id string) error {
	_, _, err := api.do(ctx, http.MethodPost, addr, wire.PathRaftRemove, "", wire.NodeRequest{ID: id}, nil)
	return err
}

// staleGet reads key from addr's local state (?stale=true).
func (api agentAPI) staleGet(ctx context.Context, addr, key string) (FinalValue, error) {
	path := wire.KVPrefix + key
	h, b, err := api.do(ctx, http.MethodGet, addr, path, wire.QueryStale+"=true", nil, nil)
	if errors.Is(err, errNotFound) {
		return FinalValue{Key: key}, nil
	}
	if err != nil {
		return FinalValue{}, err
	}
	v, err := wire.ParseUint(h.Get(wire.HeaderVersion))
	if err != nil {
		return FinalValue{}, fmt.Errorf("%s: bad %s header: %v", addr, wire.HeaderVersion, err)
	}
	return FinalValue{Key: key, Exists: true, Value: string(b), Version: v}, nil
}

func (api agentAPI) gossipMembers(ctx context.Context, addr string) ([]wire.Member, error) {
	var m wire.Members
	_, _, err := api.do(ctx, http.MethodGet, addr, wire.PathGossipMembers, "", nil, &m)
	return m.Members, err
}
