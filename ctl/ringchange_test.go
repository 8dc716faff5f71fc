package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carpkv/carpkv/kvclient/fakeagent"
	"github.com/carpkv/carpkv/kvclient/wire"
)

func TestRingChangeArgumentsAreCheckedBeforeAsking(t *testing.T) {
	t.Setenv("CARPKV_ADDR", fakeagent.DeadAddr(t)) // nothing may be sent
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"ring", "set-weight", "g1", "0"}, "weight must be a finite number above 0, not 0"},
		{[]string{"ring", "set-weight", "g1", "-3"}, "-3"},
		{[]string{"ring", "set-weight", "g1", "abc"}, `weight "abc" is not a number`},
		{[]string{"ring", "set-weight", "g1", "Inf"}, "finite number above 0, not +Inf"},
		{[]string{"ring", "set-weight", "g1", "NaN"}, "not NaN"},
		{[]string{"ring", "set-weight", "g1"}, "missing arguments: want GROUP WEIGHT"},
		{[]string{"ring", "add-group", "g4", "--weight", "-1"}, "not -1"},
		{[]string{"ring", "add-group", "g4", "--weight", "0"}, "not 0"},
		{[]string{"ring", "add-group", "g4", "--weight", "NaN"}, "not NaN"},
		{[]string{"ring", "add-group"}, "missing arguments: want GROUP"},
		{[]string{"ring", "add-group", ""}, "empty group"},
		{[]string{"ring", "remove-group", "g1", "g2"}, "too many arguments"},
		{[]string{"ring", "status", "x"}, "too many arguments"},
	}
	for _, tt := range tests {
		r := runCLI(t, "", tt.args...)
		if r.code != exitInvalid || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 3 and %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
}

// fixedChange is a change in copy phase, as the coordinator's leader
// reports it, started 90 s before changeNow.
var (
	changeNow   = time.UnixMilli(1_800_000_090_000)
	fixedChange = wire.RingChangeStatus{
		Kind: wire.ChangeAddGroup, Group: "g4", Phase: wire.PhaseCopy, Coordinator: "g1", Live: true,
		From:      wire.RingSpec{Epoch: 3, Groups: []wire.RingGroupSpec{{ID: "g1", Weight: 1}, {ID: "g2", Weight: 1}}},
		To:        wire.RingSpec{Epoch: 4, Groups: []wire.RingGroupSpec{{ID: "g1", Weight: 1}, {ID: "g2", Weight: 1}, {ID: "g4", Weight: 2}}},
		StartedAt: 1_800_000_000_000, PhaseAt: 1_800_000_060_000,
		Sources: []wire.SourceProgress{
			{Group: "g1", Estimate: 5000, Rounds: 1},
			{Group: "g2", Estimate: 5000, Rounds: 2, Frozen: true},
		},
		Pairs: []wire.PairProgress{
			{Source: "g1", Dest: "g4", Keys: 2000, Bytes: 2 << 20},
			{Source: "g2", Dest: "g4", Keys: 3000, Bytes: 3 << 20},
		},
	}
)

func TestProgressLine(t *testing.T) {
	st := fixedChange
	tests := []struct {
		name string
		st   wire.RingChangeStatus
		r    rate
		want string
	}{
		{"no rate yet", st, rate{},
			"epoch 3→4 add g4 (weight 2): copy (2/8) · g1→g4 2,000 keys 2.0 MiB · g2→g4 3,000 keys 3.0 MiB · total 5,000/~10,000 keys (50.0%) 5.0 MiB · 1m30s elapsed"},
		{"rate and ETA", st, rate{keys: 1000, bytes: 1.5e6, ok: true},
			"epoch 3→4 add g4 (weight 2): copy (2/8) · g1→g4 2,000 keys 2.0 MiB · g2→g4 3,000 keys 3.0 MiB · total 5,000/~10,000 keys (50.0%) 5.0 MiB · 1,000 keys/s 1.5 MB/s · ETA 5s · 1m30s elapsed"},
		{"last error, no estimate", func() wire.RingChangeStatus {
			s := st
			s.Kind, s.Group, s.Sources, s.Pairs, s.LastError = wire.ChangeSetWeight, "g2", nil, nil, "g2: no leader"
			s.To = wire.RingSpec{Epoch: 4, Groups: []wire.RingGroupSpec{{ID: "g1", Weight: 1}, {ID: "g2", Weight: 3}}}
			return s
		}(), rate{},
			"epoch 3→4 g2 weight 1 → 3: copy (2/8) · total 0 keys 0 B · 1m30s elapsed · retrying: g2: no leader"},
	}
	for _, tt := range tests {
		if got := progressLine(&tt.st, tt.r, changeNow); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

func TestRateMeterMeasuresFromItsFirstSample(t *testing.T) {
	m := &rateMeter{}
	st := fixedChange
	t0 := time.Unix(100, 0)
	if r := m.sample(t0, &st); r.ok {
		t.Fatalf("first sample gave a rate: %+v", r)
	}
	st.Pairs = []wire.PairProgress{{Source: "g1", Dest: "g4", Keys: 7000, Bytes: 7 << 20}}
	r := m.sample(t0.Add(2*time.Second), &st)
	if !r.ok || r.keys != 1000 || r.bytes != float64(2<<20)/2 {
		t.Fatalf("rate = %+v, want 1000 keys/s", r)
	}
}

func TestChangeOutcome(t *testing.T) {
	active := func(epoch uint64, phase string) *wire.RingChangeStatus {
		return &wire.RingChangeStatus{To: wire.RingSpec{Epoch: epoch}, Phase: phase}
	}
	tests := []struct {
		name     string
		ans      wire.RingChangeAnswer
		wantSt   uint64 // To.Epoch of the status returned; 0: none
		wantDone bool
	}{
		{"ours runs", wire.RingChangeAnswer{Active: active(4, wire.PhaseCopy), Last: active(3, wire.PhaseDone)}, 4, false},
		{"ours is done, recorded as last", wire.RingChangeAnswer{Last: active(4, wire.PhaseDone)}, 4, true},
		{"ours is active in phase done", wire.RingChangeAnswer{Active: active(4, wire.PhaseDone)}, 4, true},
		{"a later one runs, ours is last", wire.RingChangeAnswer{Active: active(5, wire.PhasePrepare), Last: active(4, wire.PhaseDone)}, 4, true},
		{"a later one ran", wire.RingChangeAnswer{Last: active(6, wire.PhaseDone)}, 0, true},
		{"nothing about it yet", wire.RingChangeAnswer{Last: active(3, wire.PhaseDone)}, 0, false},
		{"nothing at all", wire.RingChangeAnswer{}, 0, false},
	}
	for _, tt := range tests {
		st, done := changeOutcome(&tt.ans, 4)
		var got uint64
		if st != nil {
			got = st.To.Epoch
		}
		if got != tt.wantSt || done != tt.wantDone {
			t.Errorf("%s: status epoch %d, done %v; want %d, %v", tt.name, got, done, tt.wantSt, tt.wantDone)
		}
	}
}

func TestPrintChangeStatus(t *testing.T) {
	last := fixedChange
	last.Phase, last.FinishedAt, last.Live = wire.PhaseDone, 1_800_000_072_000, false
	follower := fixedChange
	follower.Live, follower.LastError = false, ""
	withErr := fixedChange
	withErr.LastError = "g2: no leader"
	tests := []struct {
		name string
		ans  wire.RingChangeAnswer
		want []string
	}{
		{"none", wire.RingChangeAnswer{}, []string{"no ring change recorded"}},
		{"last", wire.RingChangeAnswer{Last: &last}, []string{
			"no ring change in progress; last ring change done: add g4 (weight 2), ring epoch 3 → 4 in 1m12s; 5,000 keys (5.0 MiB) moved",
			"finished 2027-01-15T08:01:12Z (18s ago)",
		}},
		{"active", wire.RingChangeAnswer{Active: &withErr, Last: &last}, []string{
			"ring change in progress: add g4 (weight 2), ring epoch 3 → 4, phase copy (2/8)",
			"coordinator g1 (live, from its leader)",
			"started 2027-01-15T08:00:00Z, 1m30s ago; in this phase for 30s",
			"weights: g1 1, g2 1 → g1 1, g2 1, g4 2",
			"last error (the coordinator retries): g2: no leader",
			"g2      5,000     2       yes     no      no       0",
			"g2 → g4        3,000      3.0 MiB",
			"total: 5,000 keys (5.0 MiB) sent of ~10,000 estimated to move",
		}},
		{"from a follower", wire.RingChangeAnswer{Active: &follower}, []string{"recorded state, from a follower: no live progress"}},
	}
	for _, tt := range tests {
		var b strings.Builder
		if err := printChangeStatus(&b, &tt.ans, changeNow); err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: missing %q in:\n%s", tt.name, w, b.String())
			}
		}
		if tt.name != "active" && strings.Contains(b.String(), "last error") {
			t.Errorf("%s: shows a last error:\n%s", tt.name, b.String())
		}
	}
}

// fakeCoordinator makes g1's leader in c answer the ring change endpoints:
// POST with post's answer, GET with the answers in turn (the last one
// repeats). It returns the number of POSTs seen.
func fakeCoordinator(c *fakeagent.Cluster, post func(http.ResponseWriter, *http.Request), gets ...wire.RingChangeAnswer) *atomic.Int64 {
	var posts, n atomic.Int64
	a := c.Group("g1").Agent(0)
	a.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != wire.PathRingChange {
			return false
		}
		if r.Method == http.MethodPost {
			posts.Add(1)
			post(w, r)
			return true
		}
		i := min(int(n.Add(1))-1, len(gets)-1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(gets[i])
		return true
	})
	return &posts
}

func TestRingAddGroupWaitsUntilDone(t *testing.T) {
	c := multiCluster(t, 3, 1)
	started := fixedChange
	started.Phase, started.Sources, started.Pairs = wire.PhasePrepare, nil, nil
	copying := fixedChange
	done := fixedChange
	done.Phase, done.FinishedAt = wire.PhaseDone, done.StartedAt+72_000
	var got wire.RingChangeRequest
	posts := fakeCoordinator(c, func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&got)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(started)
	}, wire.RingChangeAnswer{Active: &copying}, wire.RingChangeAnswer{Last: &done})

	r := runCLI(t, "", "ring", "add-group", "g4", "--weight", "2", "--wait")
	mustSucceed(t, r)
	if got != (wire.RingChangeRequest{Kind: wire.ChangeAddGroup, Group: "g4", Weight: 2}) || posts.Load() != 1 {
		t.Fatalf("the coordinator got %+v in %d requests", got, posts.Load())
	}
	for _, w := range []string{
		"ring change recorded by g1: add g4 (weight 2), ring epoch 3 → 4 (phase prepare)",
		"weights: g1 1, g2 1 → g1 1, g2 1, g4 2",
		"ring change done: add g4 (weight 2), ring epoch 3 → 4 in 1m12s; 5,000 keys (5.0 MiB) moved",
	} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
		}
	}
	// stderr is not a terminal: plain lines, the copy phase shown once.
	if !strings.Contains(r.stderr, "epoch 3→4 add g4 (weight 2): copy (2/8) · g1→g4 2,000 keys") || strings.Contains(r.stderr, "\r") {
		t.Errorf("progress on stderr:\n%q", r.stderr)
	}
}

func TestRingChangeWithoutWaitPrintsTheRecordedChange(t *testing.T) {
	c := multiCluster(t, 2, 1)
	started := fixedChange
	started.Phase, started.Kind, started.Group = wire.PhasePrepare, wire.ChangeRemoveGroup, "g2"
	fakeCoordinator(c, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(started)
	}, wire.RingChangeAnswer{})

	r := runCLI(t, "", "ring", "remove-group", "g2")
	mustSucceed(t, r)
	if !strings.HasPrefix(r.stdout, "ring change recorded by g1: remove g2, ring epoch 3 → 4 (phase prepare)\n") ||
		!strings.Contains(r.stdout, "'carpkvctl ring status' follows it") {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	r = runCLI(t, "", "ring", "remove-group", "g2", "-o", "json")
	mustSucceed(t, r)
	var st wire.RingChangeStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Kind != wire.ChangeRemoveGroup || st.To.Epoch != 4 {
		t.Fatalf("-o json: %v\n%s", err, r.stdout)
	}
}

func TestRingChangeInProgressExitsWithConflict(t *testing.T) {
	c := multiCluster(t, 2, 1)
	fakeCoordinator(c, func(w http.ResponseWriter, r *http.Request) {
		fakeagent.WriteError(w, &wire.Error{Code: wire.CodeRingChangeInProgress, Message: "add-group g4 (epoch 3 → 4) is in phase copy"})
	}, wire.RingChangeAnswer{})
	r := runCLI(t, "", "ring", "set-weight", "g2", "2")
	if r.code != exitConflict || !strings.Contains(r.stderr, "add-group g4 (epoch 3 → 4) is in phase copy") || !strings.Contains(r.stderr, "ring status") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, "", "ring", "set-weight", "g2", "2", "-o", "json")
	if r.code != exitConflict || !strings.Contains(r.stderr, `"code":"ring_change_in_progress"`) {
		t.Fatalf("-o json: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestRingStatusJSONIsTheAnswer(t *testing.T) {
	c := multiCluster(t, 2, 1)
	active := fixedChange
	fakeCoordinator(c, nil, wire.RingChangeAnswer{Active: &active})
	r := runCLI(t, "", "ring", "status", "-o", "json")
	mustSucceed(t, r)
	var ans wire.RingChangeAnswer
	if err := json.Unmarshal([]byte(r.stdout), &ans); err != nil || ans.Active == nil || len(ans.Active.Pairs) != 2 || ans.Last != nil {
		t.Fatalf("ring status -o json: %v\n%s", err, r.stdout)
	}
	r = runCLI(t, "", "ring", "status")
	mustSucceed(t, r)
	if !strings.HasPrefix(r.stdout, "ring change in progress: add g4 (weight 2), ring epoch 3 → 4, phase copy (2/8)") {
		t.Fatalf("ring status:\n%s", r.stdout)
	}
}

func TestRingChangeWaitThatRunsOutSaysTheChangeGoesOn(t *testing.T) {
	c := multiCluster(t, 2, 1)
	started := fixedChange
	started.Phase = wire.PhasePrepare
	copying := fixedChange
	fakeCoordinator(c, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(started)
	}, wire.RingChangeAnswer{Active: &copying})
	r := runCLI(t, "", "--timeout", "1500ms", "ring", "add-group", "g4", "--wait")
	if r.code != exitTimeout || !strings.Contains(r.stderr, "waited 1.5s: the ring change to epoch 4 is in phase copy and goes on in the cluster") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}
