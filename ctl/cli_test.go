package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/carpkv/carpkv/kvclient/fakeagent"
	"github.com/carpkv/carpkv/kvclient/wire"
)

type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs carpkvctl in-process with args and stdin.
func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"carpkvctl"}, args...), strings.NewReader(stdin), &out, &errb)
	return result{out.String(), errb.String(), code}
}

// cluster starts a fake group and points CARPKV_ADDR at it.
func cluster(t *testing.T, n int) *fakeagent.Group {
	t.Helper()
	g := fakeagent.NewGroup(n)
	t.Cleanup(g.Close)
	t.Setenv("CARPKV_ADDR", strings.Join(g.Addrs(), ","))
	return g
}

func mustSucceed(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestGetPrintsTheRawValueBytes(t *testing.T) {
	cluster(t, 3)
	val := "line 1\nline 2\x00\xff\xfe no newline at the end"
	mustSucceed(t, runCLI(t, val, "put", "blob/1", "-"))
	r := runCLI(t, "", "get", "blob/1")
	mustSucceed(t, r)
	if r.stdout != val {
		t.Fatalf("get printed %q, want exactly %q", r.stdout, val)
	}
	if r.stderr != "" {
		t.Fatalf("stderr %q", r.stderr)
	}
}

func TestPutReadsStdinAndPrintsTheVersion(t *testing.T) {
	g := cluster(t, 1)
	for _, args := range [][]string{{"put", "k"}, {"put", "k", "-"}} {
		r := runCLI(t, "from stdin\n", args...)
		mustSucceed(t, r)
		stored, ver := g.Value([]byte("k"))
		if string(stored) != "from stdin\n" {
			t.Fatalf("%v stored %q", args, stored)
		}
		if r.stdout != wire.FormatUint(ver)+"\n" {
			t.Fatalf("%v printed %q, want the version %d", args, r.stdout, ver)
		}
	}
	mustSucceed(t, runCLI(t, "ignored", "put", "k", "literal"))
	if stored, _ := g.Value([]byte("k")); string(stored) != "literal" {
		t.Fatalf("stored %q, want the argument", stored)
	}
}

func TestGetJSONEncodesNonUTF8AsBase64(t *testing.T) {
	cluster(t, 1)
	mustSucceed(t, runCLI(t, "héllo", "put", "text", "-"))
	mustSucceed(t, runCLI(t, "\xff\x00\x01", "put", "bin", "-"))

	var got valueResult
	r := runCLI(t, "", "get", "text", "-o", "json")
	mustSucceed(t, r)
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("get -o json printed %q: %v", r.stdout, err)
	}
	if got.Key != "text" || got.Value != "héllo" || got.ValueBase64 || got.Version == 0 {
		t.Fatalf("get -o json = %+v", got)
	}

	r = runCLI(t, "", "--output", "json", "get", "bin")
	mustSucceed(t, r)
	got = valueResult{}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("get -o json printed %q: %v", r.stdout, err)
	}
	raw, err := base64.StdEncoding.DecodeString(got.Value)
	if !got.ValueBase64 || err != nil || string(raw) != "\xff\x00\x01" {
		t.Fatalf("binary value = %+v (decoded %q, %v)", got, raw, err)
	}
}

func TestNotFoundExits2WithTheErrorOnStderr(t *testing.T) {
	cluster(t, 3)
	r := runCLI(t, "", "get", "missing")
	if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, "carpkvctl: ") || !strings.Contains(r.stderr, "not_found") {
		t.Fatalf("get missing = %+v", r)
	}
	r = runCLI(t, "", "get", "missing", "-o", "json")
	var body wire.ErrorBody
	if r.code != 2 || r.stdout != "" || json.Unmarshal([]byte(r.stderr), &body) != nil || body.Error == nil || body.Error.Code != wire.CodeNotFound {
		t.Fatalf("get missing -o json = %+v, want the wire error JSON on stderr", r)
	}
	if r := runCLI(t, "", "delete", "missing"); r.code != 2 {
		t.Fatalf("delete missing = %+v", r)
	}
}

func TestConditionalWritesExit5WithTheCurrentVersion(t *testing.T) {
	g := cluster(t, 3)
	mustSucceed(t, runCLI(t, "", "put", "--if-absent", "lock", "n1"))
	_, v := g.Value([]byte("lock"))
	r := runCLI(t, "", "put", "lock", "n2", "--if-absent")
	if r.code != 5 || !strings.Contains(r.stderr, "current version "+wire.FormatUint(v)) {
		t.Fatalf("second put --if-absent = %+v", r)
	}
	r = runCLI(t, "", "cas", "lock", "n2", "--expect", "9999", "-o", "json")
	var body wire.ErrorBody
	if r.code != 5 || json.Unmarshal([]byte(r.stderr), &body) != nil || body.Error.Code != wire.CodeCASFailed || body.Error.Version != v {
		t.Fatalf("cas at a wrong version = %+v", r)
	}
	// Flags after the arguments, as the help shows.
	r = runCLI(t, "", "cas", "lock", "n2", "--expect", wire.FormatUint(v))
	mustSucceed(t, r)
	stored, v2 := g.Value([]byte("lock"))
	if string(stored) != "n2" || r.stdout != wire.FormatUint(v2)+"\n" {
		t.Fatalf("cas stored %q, printed %q", stored, r.stdout)
	}
	if r := runCLI(t, "", "delete", "lock", "--cas", wire.FormatUint(v)); r.code != 5 {
		t.Fatalf("delete --cas at a wrong version = %+v", r)
	}
	r = runCLI(t, "", "delete", "--cas", wire.FormatUint(v2), "lock", "-o", "json")
	mustSucceed(t, r)
	var wr writeResult
	if err := json.Unmarshal([]byte(r.stdout), &wr); err != nil || wr.Key != "lock" || wr.Version != v2 {
		t.Fatalf("delete -o json printed %q (%v)", r.stdout, err)
	}
}

func TestUsageErrorsExit3WithAClearMessage(t *testing.T) {
	cluster(t, 1)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"get"}, "get: missing arguments: want KEY"},
		{[]string{"get", "a", "b"}, "get: too many arguments"},
		{[]string{"put"}, "put: missing arguments"},
		{[]string{"cas", "k", "v"}, "--expect VERSION is required"},
		{[]string{"delete", "k", "--cas", "0"}, "--cas must be a version > 0"},
		{[]string{"join", "--id", "n4", "--http-addr", "a:1"}, "--raft-addr is required"},
		{[]string{"remove"}, "remove: missing arguments: want ID"},
		{[]string{"transfer-leader", "a", "b"}, "too many arguments"},
		{[]string{"get", "k", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"--output", "yaml", "get", "k"}, "--output must be table or json"},
		{[]string{"--timeout", "0s", "get", "k"}, "--timeout must be positive"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{}, "no command given"},
		{[]string{"--addr", "no-port", "get", "k"}, "--addr"},
		{[]string{"cas", "k", "v", "--expect", "x"}, "invalid value"},
	}
	for _, tt := range tests {
		r := runCLI(t, "", tt.args...)
		if r.code != 3 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("carpkvctl %s = exit %d, stderr %q; want exit 3 and %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.want)
		}
	}
	t.Setenv("CARPKV_ADDR", "")
	r := runCLI(t, "", "get", "k")
	if r.code != 3 || !strings.Contains(r.stderr, "no agent address") || !strings.Contains(r.stderr, "Run 'carpkvctl get --help'") {
		t.Errorf("get without an address = %+v", r)
	}
}

func TestHelpExits0(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"get", "--help"}, {"help", "cas"}, {"cas", "-h"}} {
		r := runCLI(t, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "USAGE") {
			t.Errorf("carpkvctl %v = %+v", args, r)
		}
	}
}

func TestUnreachableClusterExits4(t *testing.T) {
	g := fakeagent.NewGroup(1)
	addr := g.Agent(0).Addr()
	g.Close()
	t.Setenv("CARPKV_ADDR", addr)
	for _, args := range [][]string{{"--timeout", "500ms", "get", "k"}, {"--timeout", "500ms", "put", "k", "v"}, {"status"}} {
		if r := runCLI(t, "", args...); r.code != 4 {
			t.Errorf("carpkvctl %v = %+v, want exit 4", args, r)
		}
	}
}

func TestMembershipCommands(t *testing.T) {
	g := cluster(t, 3)
	r := runCLI(t, "", "members")
	mustSucceed(t, r)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], "*") {
		t.Fatalf("members printed:\n%s", r.stdout)
	}
	mustSucceed(t, runCLI(t, "", "join", "--id", "n4", "--raft-addr", "127.0.0.1:17004", "--http-addr", "127.0.0.1:17104", "--nonvoter"))
	r = runCLI(t, "", "members", "-o", "json")
	mustSucceed(t, r)
	var conf wire.Configuration
	if err := json.Unmarshal([]byte(r.stdout), &conf); err != nil || len(conf.Servers) != 4 || conf.Servers[3].Suffrage != "Nonvoter" {
		t.Fatalf("members -o json printed %q (%v)", r.stdout, err)
	}
	mustSucceed(t, runCLI(t, "", "remove", "n4"))
	if r := runCLI(t, "", "remove", "n4"); r.code != 2 {
		t.Fatalf("second remove = %+v, want exit 2", r)
	}
	mustSucceed(t, runCLI(t, "", "transfer-leader", "n3"))
	if g.Leader() != 2 {
		t.Fatalf("leader is agent %d after transfer-leader n3", g.Leader())
	}
}

func TestAddrFlagOverridesTheEnvironment(t *testing.T) {
	g := cluster(t, 1)
	t.Setenv("CARPKV_ADDR", deadAddr(t))
	mustSucceed(t, runCLI(t, "", "--addr", g.Agent(0).Addr(), "put", "k", "v"))
	mustSucceed(t, runCLI(t, "", "put", "k", "v", "-a", deadAddr(t)+","+g.Agent(0).Addr()))
}
