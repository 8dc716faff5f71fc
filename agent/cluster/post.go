package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// post sends body as JSON to path at addr, following not_leader hints (a
// few hops), and decodes a 200 answer into out (if not nil).
func post(ctx context.Context, client *http.Client, addr, path string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return exchange(ctx, client, http.MethodPost, addr, path, "application/json", data, out)
}

// exchange sends one request (data, of type contentType; nil: no body) to
// path at addr, following not_leader hints (a few hops), and decodes a 200
// answer's JSON into out (if not nil). An error answer is a *wire.Error.
func exchange(ctx context.Context, client *http.Client, method, addr, path, contentType string, data []byte, out any) error {
	for hop := 0; hop < 3; hop++ {
		var body io.Reader
		if data != nil {
			body = bytes.NewReader(data)
		}
		hreq, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, body)
		if err != nil {
			return err
		}
		if data != nil {
			hreq.Header.Set("Content-Type", contentType)
		}
		resp, err := client.Do(hreq)
		if err != nil {
			return err
		}
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			if out != nil {
				return json.Unmarshal(answer, out)
			}
			return nil
		}
		var eb wire.ErrorBody
		if json.Unmarshal(answer, &eb) != nil || eb.Error == nil {
			return fmt.Errorf("HTTP %d from %s", resp.StatusCode, addr)
		}
		if eb.Error.Code == wire.CodeNotLeader && eb.Error.Leader != nil && eb.Error.Leader.HTTP != "" && eb.Error.Leader.HTTP != addr {
			addr = eb.Error.Leader.HTTP
			continue
		}
		return eb.Error
	}
	return fmt.Errorf("too many leader redirects")
}

// exchangeAny tries addrs in order until one answers other than with a
// transport failure, not_leader or unavailable (a group's members, leader
// first): a dead or deposed member costs one try, not the call.
func exchangeAny(ctx context.Context, client *http.Client, method string, addrs []string, path, contentType string, data []byte, out any) error {
	err := errors.New("no address to ask")
	for _, a := range addrs {
		err = exchange(ctx, client, method, a, path, contentType, data, out)
		var we *wire.Error
		if err == nil || ctx.Err() != nil || (errors.As(err, &we) && we.Code != wire.CodeNotLeader && we.Code != wire.CodeUnavailable) {
			return err
		}
	}
	return err
}
