package cluster

import (
	"bytes"
	"context"
	"encoding/json"
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
	for hop := 0; hop < 3; hop++ {
		hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(data))
		if err != nil {
			return err
		}
		hreq.Header.Set("Content-Type", "application/json")
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
