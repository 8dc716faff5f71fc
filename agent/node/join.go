package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// joinLoop asks the configured members to add this node until one of them
// (or the leader it names) succeeds, or the node stops. Agents of a group
// can therefore start in any order: a join address that is not up yet only
// costs a retry.
func (n *Node) joinLoop() {
	defer n.wg.Done()
	req := wire.JoinRequest{ID: n.cfg.NodeID, RaftAddr: n.cfg.RaftAdvertise, HTTPAddr: n.cfg.HTTPAdvertise}
	client := &http.Client{Timeout: 10 * time.Second}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		for _, addr := range n.cfg.Join {
			err := postJoin(client, addr, req)
			if err == nil {
				n.log.Info("joined group", "via", addr, "attempts", attempt)
				return
			}
			n.log.Info("join attempt failed; will retry", "via", addr, "err", err)
		}
		select {
		case <-n.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 3*time.Second)
	}
}

// postJoin sends the join request to addr, following one not_leader hint.
func postJoin(client *http.Client, addr string, req wire.JoinRequest) error {
	body, _ := json.Marshal(req)
	for hop := 0; hop < 3; hop++ {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+wire.PathRaftJoin, bytes.NewReader(body))
		if err != nil {
			cancel()
			return err
		}
		hreq.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(hreq)
		if err != nil {
			cancel()
			return err
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		cancel()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		var eb wire.ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == nil {
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
