package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/carpkv/carpkv/kvclient/fakeagent"
)

func TestReorderArgsMovesFlagsBeforeArguments(t *testing.T) {
	app := (&env{}).newApp()
	tests := []struct{ in, want string }{
		{"cas k v --expect 3", "cas --expect 3 k v"},
		{"get k -o json", "-o json get k"},
		{"get k --output=json --stale", "--output=json get --stale k"},
		{"--addr a:1 get k --addr b:2", "--addr a:1 --addr b:2 get k"},
		{"put k -", "put k -"},
		{"get -- -k", "get -- -k"},
		{"get k -- --not-a-flag", "get k --not-a-flag"},
		{"get --stale -- -k -o", "get --stale -- -k -o"},
		{"get k --bogus", "get --bogus k"},
		{"help get", "help get"},
		{"unknown x --y", "unknown x --y"},
		{"--timeout 1s", "--timeout 1s"},
		{"join --id n4 --nonvoter --raft-addr r:1", "join --id n4 --nonvoter --raft-addr r:1"},
		{"local up --groups 3 --fresh", "local up --groups 3 --fresh"},
		{"local up --dir d -g 2", "local --dir d up -g 2"},
		{"local --dir d kill g1-n1 -o json", "-o json local --dir d kill g1-n1"},
		{"local logs g1-n1 -n 5", "local logs -n 5 g1-n1"},
		{"ring owner k --timeout 1s", "--timeout 1s ring owner k"},
		{"ring owner -- -k", "ring owner -- -k"},
		{"ring owner show", "ring owner show"},
		{"local up --bogus", "local up --bogus"},
	}
	for _, tt := range tests {
		got := reorderArgs(app, append([]string{"carpkvctl"}, strings.Fields(tt.in)...))
		if want := append([]string{"carpkvctl"}, strings.Fields(tt.want)...); !slices.Equal(got, want) {
			t.Errorf("reorderArgs(%q) = %q, want %q", tt.in, got[1:], want[1:])
		}
	}
}

// deadAddr is an address that refuses connections.
var deadAddr = fakeagent.DeadAddr
