package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/carpkv/carpkv/internal/testcluster"
	"github.com/carpkv/carpkv/kvclient/wire"
)

func joinRequest(n *testcluster.Node) wire.JoinRequest {
	return wire.JoinRequest{ID: n.ID, RaftAddr: n.RaftAddr, HTTPAddr: n.HTTPAddr}
}

type answer struct {
	status int
	body   []byte
	header http.Header
	err    *wire.Error
}

func do(t *testing.T, method, url string, body io.Reader) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	a.body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var eb wire.ErrorBody
		if err := json.Unmarshal(a.body, &eb); err != nil || eb.Error == nil {
			t.Fatalf("%s %s: HTTP %d with a body outside the error model: %q", method, url, resp.StatusCode, a.body)
		}
		a.err = eb.Error
		if want := eb.Error.Code.HTTPStatus(); want != resp.StatusCode {
			t.Fatalf("%s %s: code %s with HTTP %d, want %d", method, url, eb.Error.Code, resp.StatusCode, want)
		}
	}
	return a
}

// TestEveryBadInputGetsItsErrorCode drives the HTTP API directly: the
// wire codes are the contract every client relies on.
func TestEveryBadInputGetsItsErrorCode(t *testing.T) {
	c := testcluster.Start(t, "g1", 3, "--max-key-bytes=64", "--max-value-bytes=1024", "--max-body-bytes=2048")
	c.DumpLogsOnFailure()
	leader := c.Leader(10 * time.Second)
	follower := c.Follower(leader)
	L := "http://" + leader.HTTPAddr
	kv := L + wire.KVPrefix

	// A value that exists, for the CAS cases.
	put := do(t, "PUT", kv+"present", strings.NewReader("v"))
	if put.status != 200 {
		t.Fatalf("put: %d %s", put.status, put.body)
	}
	var wr wire.WriteResult
	if err := json.Unmarshal(put.body, &wr); err != nil || wr.Version == 0 {
		t.Fatalf("put result %s: %v", put.body, err)
	}

	for _, tc := range []struct {
		name, method, url string
		body              string
		want              wire.Code
	}{
		{"empty key", "PUT", kv, "v", wire.CodeInvalidArgument},
		{"key too large", "PUT", kv + strings.Repeat("k", 65), "v", wire.CodeTooLarge},
		{"value too large", "PUT", kv + "big", strings.Repeat("v", 1025), wire.CodeTooLarge},
		{"body too large", "PUT", kv + "big", strings.Repeat("v", 4096), wire.CodeTooLarge},
		{"missing key", "GET", kv + "absent", "", wire.CodeNotFound},
		{"delete missing", "DELETE", kv + "absent", "", wire.CodeNotFound},
		{"bad cas", "PUT", kv + "present?cas=x", "v", wire.CodeInvalidArgument},
		{"put-if-absent on present", "PUT", kv + "present?cas=0", "v", wire.CodeCASFailed},
		{"stale cas", "PUT", kv + fmt.Sprintf("present?cas=%d", wr.Version+10), "v", wire.CodeCASFailed},
		{"stale cas delete", "DELETE", kv + fmt.Sprintf("present?cas=%d", wr.Version+10), "", wire.CodeCASFailed},
		{"bad stale flag", "GET", kv + "present?stale=maybe", "", wire.CodeInvalidArgument},
		{"bad timeout", "GET", kv + "present?timeout=soon", "", wire.CodeInvalidArgument},
		{"unknown endpoint", "GET", L + "/v1/nope", "", wire.CodeNotFound},
		{"wrong method", "POST", kv + "present", "", wire.CodeInvalidArgument},
		{"malformed join", "POST", L + wire.PathRaftJoin, "{not json", wire.CodeInvalidArgument},
		{"unknown join field", "POST", L + wire.PathRaftJoin, `{"idd":"x"}`, wire.CodeInvalidArgument},
		{"incomplete join", "POST", L + wire.PathRaftJoin, `{"id":"x"}`, wire.CodeInvalidArgument},
		{"remove unknown node", "POST", L + wire.PathRaftRemove, `{"id":"ghost"}`, wire.CodeNotFound},
		{"transfer to unknown node", "POST", L + wire.PathTransferLeadership, `{"id":"ghost"}`, wire.CodeNotFound},
		{"write on follower", "PUT", "http://" + follower.HTTPAddr + wire.KVPrefix + "k", "v", wire.CodeNotLeader},
		{"linearizable read on follower", "GET", "http://" + follower.HTTPAddr + wire.KVPrefix + "present", "", wire.CodeNotLeader},
		{"join via follower", "POST", "http://" + follower.HTTPAddr + wire.PathRaftJoin, `{"id":"x","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`, wire.CodeNotLeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			a := do(t, tc.method, tc.url, body)
			if a.err == nil || a.err.Code != tc.want {
				t.Fatalf("got HTTP %d %s, want code %s", a.status, a.body, tc.want)
			}
			switch tc.want {
			case wire.CodeCASFailed:
				if a.err.Version != wr.Version {
					t.Errorf("cas_failed carries version %d, want %d", a.err.Version, wr.Version)
				}
			case wire.CodeNotLeader:
				if a.err.Leader == nil || a.err.Leader.ID != leader.ID || a.err.Leader.HTTP != leader.HTTPAddr {
					t.Errorf("not_leader hint %+v, want %s at %s", a.err.Leader, leader.ID, leader.HTTPAddr)
				}
			}
		})
	}

	// Nothing above changed the data or hurt the group.
	g := do(t, "GET", kv+"present", nil)
	if g.status != 200 || string(g.body) != "v" || g.header.Get(wire.HeaderVersion) != wire.FormatUint(wr.Version) {
		t.Fatalf("after bad input: %d %q version %s", g.status, g.body, g.header.Get(wire.HeaderVersion))
	}
	if a := do(t, "GET", kv+"big", nil); a.err == nil || a.err.Code != wire.CodeNotFound {
		t.Fatalf("an oversized value was stored: %d %s", a.status, a.body)
	}
	// Binary-safe keys and values round-trip, and exactly-at-limit is fine.
	key := "a/b%c d\x00\xff"
	val := bytes.Repeat([]byte{0, 0xff, '\n'}, 341)
	if a := do(t, "PUT", kv+escape(key), bytes.NewReader(val[:1023])); a.status != 200 {
		t.Fatalf("binary put: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", kv+escape(key), nil); a.status != 200 || !bytes.Equal(a.body, val[:1023]) {
		t.Fatalf("binary get: %d %q", a.status, a.body)
	}
	// Joining twice is harmless.
	j, _ := json.Marshal(joinRequest(follower))
	for i := 0; i < 2; i++ {
		if a := do(t, "POST", L+wire.PathRaftJoin, bytes.NewReader(j)); a.status != 200 {
			t.Fatalf("re-join %d: %d %s", i, a.status, a.body)
		}
	}
	c.WaitMembers(3, 10*time.Second)
}

func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}
