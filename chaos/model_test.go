package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// op builds a recorded op on key "k" of group "g1" for the checker tests.
func op(client int, call, ret int64, kind OpKind, value string, expect uint64, outcome Outcome, version uint64) Op {
	return Op{Client: client, Key: "k", Group: "g1", Kind: kind, Value: value, Expect: expect,
		Call: call, Return: ret, Outcome: outcome, Version: version}
}

func checkOne(t *testing.T, ops []Op) porcupine.CheckResult {
	t.Helper()
	for i := range ops {
		ops[i].ID = i
	}
	res, err := CheckLinearizable(ops, 0, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 {
		t.Fatalf("%d keys", len(res))
	}
	return res[0].Result
}

func TestRegisterModelAcceptsAndRefusesHistories(t *testing.T) {
	const ok, unknown, nf, casf, failed = OutcomeOK, OutcomeUnknown, OutcomeNotFound, OutcomeCASFailed, OutcomeFailed
	tests := []struct {
		name string
		ops  []Op
		want porcupine.CheckResult
	}{
		{"read of an absent key", []Op{
			op(0, 0, 1, OpGet, "", 0, nf, 0),
		}, porcupine.Ok},
		{"read your write", []Op{
			op(0, 0, 1, OpPut, "a", 0, ok, 5),
			op(0, 2, 3, OpGet, "a", 0, ok, 5),
		}, porcupine.Ok},
		{"stale read after an acknowledged write", []Op{
			op(0, 0, 1, OpPut, "a", 0, ok, 5),
			op(0, 2, 3, OpPut, "b", 0, ok, 7),
			op(1, 4, 5, OpGet, "a", 0, ok, 5),
		}, porcupine.Illegal},
		{"read of a version no write made", []Op{
			op(0, 0, 1, OpPut, "a", 0, ok, 5),
			op(1, 2, 3, OpGet, "a", 0, ok, 6),
		}, porcupine.Illegal},
		{"versions must grow", []Op{
			op(0, 0, 1, OpPut, "a", 0, ok, 5),
			op(0, 2, 3, OpPut, "b", 0, ok, 4),
		}, porcupine.Illegal},
		{"versions grow across delete and re-create", []Op{
			op(0, 0, 1, OpPut, "a", 0, ok, 5),
			op(0, 2, 3, OpDelete, "", 0, ok, 5),
			op(0, 4, 5, OpPut, "b", 0, ok, 5),
		}, porcupine.Illegal},
		{"lost acknowledged write", []Op{
			op(0, 0, 1, OpPut, "a", 0, ok, 5),
			op(1, 2, 3, OpGet, "", 0, nf, 0),
		}, porcupine.Illegal},
		{"concurrent read may see either", []Op{
			op(0, 0, 10, OpPut, "a", 0, ok, 5),
			op(1, 1, 2, OpGet, "", 0, nf, 0),
			op(2, 3, 4, OpGet, "a", 0, ok, 5),
		}, porcupine.Ok},
		{"but not go back", []Op{
			op(0, 0, 10, OpPut, "a", 0, ok, 5),
			op(1, 1, 2, OpGet, "a", 0, ok, 5),
			op(2, 3, 4, OpGet, "", 0, nf, 0),
		}, porcupine.Illegal},
		{"unknown write that never happened", []Op{
			op(0, 0, 1, OpPut, "a", 0, ok, 5),
			op(1, 2, 3, OpPut, "b", 0, unknown, 0),
			op(0, 4, 5, OpGet, "a", 0, ok, 5),
			op(0, 6, 7, OpGet, "a", 0, ok, 5),
		}, porcupine.Ok},
		{"unknown write that happened much later", []Op{
			op(1, 0, 1, OpPut, "b", 0, unknown, 0),
			op(0, 2, 3, OpGet, "", 0, nf, 0),
			op(0, 20, 21, OpGet, "b", 0, ok, 9),
			op(0, 22, 23, OpGet, "b", 0, ok, 9),
		}, porcupine.Ok},
		{"unknown write cannot take effect before its call", []Op{
			op(0, 0, 1, OpGet, "b", 0, ok, 9),
			op(1, 2, 3, OpPut, "b", 0, unknown, 0),
		}, porcupine.Illegal},
		{"a definitely failed write must not be seen", []Op{
			op(1, 0, 1, OpPut, "b", 0, failed, 0),
			op(0, 2, 3, OpGet, "b", 0, ok, 9),
		}, porcupine.Illegal},
		{"cas on the version read", []Op{
			op(0, 0, 1, OpPut, "a", 0, ok, 5),
			op(0, 2, 3, OpCAS, "b", 5, ok, 8),
			op(1, 4, 5, OpCAS, "c", 5, casf, 8),
			op(1, 6, 7, OpGet, "b", 0, ok, 8),
		}, porcupine.Ok},
		{"two cas on one version cannot both win", []Op{
			op(0, 0, 1, OpPut, "a", 0, ok, 5),
			op(0, 2, 6, OpCAS, "b", 5, ok, 8),
			op(1, 3, 7, OpCAS, "c", 5, ok, 9),
		}, porcupine.Illegal},
		{"cas failure must report the current version", []Op{
			op(0, 0, 1, OpPut, "a", 0, ok, 5),
			op(1, 2, 3, OpCAS, "c", 4, casf, 6),
		}, porcupine.Illegal},
		{"put-if-absent", []Op{
			op(0, 0, 1, OpPutIfAbsent, "a", 0, ok, 3),
			op(1, 2, 3, OpPutIfAbsent, "b", 0, casf, 3),
			op(1, 4, 5, OpCompareAndDelete, "", 3, ok, 3),
			op(0, 6, 7, OpPutIfAbsent, "c", 0, ok, 10),
		}, porcupine.Ok},
		{"compare-and-delete of an absent key is not_found", []Op{
			op(0, 0, 1, OpCompareAndDelete, "", 3, nf, 0),
			op(0, 2, 3, OpDelete, "", 0, nf, 0),
		}, porcupine.Ok},
		{"unknown version revealed by a failed cas", []Op{
			op(0, 0, 1, OpPut, "a", 0, ok, 5),
			op(1, 2, 3, OpPut, "b", 0, unknown, 0),
			op(0, 4, 5, OpCAS, "c", 5, casf, 7),
			op(0, 6, 7, OpCAS, "d", 7, ok, 9),
			op(0, 8, 9, OpGet, "d", 0, ok, 9),
		}, porcupine.Ok},
		{"unknown cas on an unknown version, both branches", []Op{
			op(0, 0, 1, OpPut, "a", 0, ok, 5),
			op(1, 2, 3, OpPut, "b", 0, unknown, 0),
			op(2, 4, 5, OpCAS, "c", 6, unknown, 0),
			op(0, 6, 7, OpGet, "b", 0, ok, 6),
			op(0, 8, 9, OpGet, "c", 0, ok, 11),
		}, porcupine.Ok},
		{"an unknown delete explains an absent key", []Op{
			op(0, 0, 1, OpPut, "a", 0, ok, 5),
			op(1, 2, 3, OpDelete, "", 0, unknown, 0),
			op(0, 4, 5, OpGet, "", 0, nf, 0),
		}, porcupine.Ok},
		{"a value read twice at different versions", []Op{
			op(0, 0, 1, OpPut, "a", 0, unknown, 0),
			op(0, 2, 3, OpGet, "a", 0, ok, 5),
			op(0, 4, 5, OpGet, "a", 0, ok, 6),
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkOne(t, tt.ops); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestIllegalHistoryIsVisualizedWithTheNemesis(t *testing.T) {
	dir := t.TempDir()
	ops := []Op{
		op(0, 0, 1, OpPut, "a", 0, OutcomeOK, 5),
		op(1, 2, 3, OpGet, "", 0, OutcomeNotFound, 0),
	}
	res, err := CheckLinearizable(ops, 0, dir, []Event{{Kind: KillLeader, Start: 1, Healed: 2, Detail: "killed g1-n1"}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Result != porcupine.Illegal || res[0].Visualization == "" {
		t.Fatalf("%+v", res[0])
	}
	b, err := readFile(res[0].Visualization)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"put(\\\"a\\\") -\\u003e ok @5", "kill-leader"} {
		if !strings.Contains(b, want) {
			t.Errorf("visualization lacks %s", want)
		}
	}
}

func TestVersionOrderAcrossKeysOfAGroup(t *testing.T) {
	w := func(id int, key string, call, ret int64, v uint64) Op {
		return Op{ID: id, Key: key, Group: "g1", Kind: OpPut, Call: call, Return: ret, Outcome: OutcomeOK, Version: v}
	}
	if p := CheckVersionOrder([]Op{w(0, "a", 0, 1, 3), w(1, "b", 2, 3, 4), w(2, "c", 2, 9, 2)}); len(p) != 1 ||
		!strings.Contains(p[0], "op 2") {
		t.Fatalf("a write after an acknowledged one with a smaller version: %q", p)
	}
	if p := CheckVersionOrder([]Op{w(0, "a", 0, 5, 3), w(1, "b", 1, 6, 2)}); len(p) != 0 {
		t.Fatalf("concurrent writes may take either order: %q", p)
	}
	if p := CheckVersionOrder([]Op{w(0, "a", 0, 5, 3), w(1, "b", 1, 6, 3)}); len(p) != 1 {
		t.Fatalf("one version acknowledged twice: %q", p)
	}
	other := w(1, "b", 2, 3, 1)
	other.Group = "g2"
	if p := CheckVersionOrder([]Op{w(0, "a", 0, 1, 3), other}); len(p) != 0 {
		t.Fatalf("groups have their own clocks: %q", p)
	}
}

func TestDurableFindsLostAcknowledgedWrites(t *testing.T) {
	put := func(id int, key, value string, v uint64, out Outcome) Op {
		return Op{ID: id, Key: key, Kind: OpPut, Value: value, Outcome: out, Version: v}
	}
	del := func(id int, key string, v uint64, out Outcome) Op {
		return Op{ID: id, Key: key, Kind: OpDelete, Outcome: out, Version: v}
	}
	ops := []Op{
		put(0, "kept", "a", 3, OutcomeOK),
		put(1, "superseded", "a", 3, OutcomeOK), put(2, "superseded", "b", 0, OutcomeUnknown),
		put(3, "lost", "a", 3, OutcomeOK), put(4, "lost", "b", 5, OutcomeOK),
		put(5, "deleted", "a", 3, OutcomeOK), del(6, "deleted", 3, OutcomeOK),
		put(7, "vanished", "a", 3, OutcomeOK),
		put(8, "maybe-deleted", "a", 3, OutcomeOK), del(9, "maybe-deleted", 0, OutcomeUnknown),
	}
	final := map[string]FinalValue{
		"kept":          {Key: "kept", Exists: true, Value: "a", Version: 3},
		"superseded":    {Key: "superseded", Exists: true, Value: "b", Version: 9},
		"lost":          {Key: "lost", Exists: true, Value: "a", Version: 3},
		"deleted":       {Key: "deleted"},
		"vanished":      {Key: "vanished"},
		"maybe-deleted": {Key: "maybe-deleted"},
	}
	p := CheckDurable(ops, final)
	if len(p) != 2 || !strings.Contains(p[0], `"lost"`) || !strings.Contains(p[1], `"vanished"`) {
		t.Fatalf("problems: %q", p)
	}
}

func TestDeadlinesFindsCallsThatOverran(t *testing.T) {
	ops := []Op{
		{ID: 0, Kind: OpPut, Call: 0, Return: int64(4 * time.Second), Deadline: int64(5 * time.Second)},
		{ID: 1, Kind: OpGet, Call: 0, Return: int64(5500 * time.Millisecond), Deadline: int64(5 * time.Second)},
		{ID: 2, Kind: OpPut, Call: 0, Return: int64(7 * time.Second), Deadline: int64(5 * time.Second), Worker: "w3"},
		{ID: 3, Kind: OpPut, Call: 0, Return: int64(9 * time.Second)},
	}
	p := CheckDeadlines(ops, time.Second)
	if len(p) != 1 || !strings.Contains(p[0], "1 calls") || !strings.Contains(p[0], "op 2") {
		t.Fatalf("%q", p)
	}
}
