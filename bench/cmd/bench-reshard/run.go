package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/carpkv/carpkv/carp"
	"github.com/carpkv/carpkv/ctl/localcluster"
	"github.com/carpkv/carpkv/kvclient"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// options are the command line of `bench-reshard run`.
type options struct {
	Bin, Work, Doc, Plots, JSON string
	Keys, KeySize, ValueSize    int
	Clients, PutPct             int
	LoadBatch, LoadConc         int
	Steady                      time.Duration
	Remove                      string
	OpTimeout                   time.Duration
	Threshold                   time.Duration
	Verify                      bool
	Keep                        bool
	Seed                        uint64
	Command, Via                string // the command line, and make's, for the report
}

// agentRaftDefaults: the agents' own Raft timings, as bench-compare runs
// them (see bench/cmd/bench-compare/systems.go): carpkvctl local up's
// shorter demo timings let a starved leader step down on two shared cores.
var agentRaftDefaults = []string{
	"--agent-arg=--raft-heartbeat-timeout=500ms",
	"--agent-arg=--raft-election-timeout=500ms",
	"--agent-arg=--raft-leader-lease-timeout=250ms",
}

// change is one ring change as the run saw it: the command around it,
// the record the coordinator kept and the phases it went through.
type change struct {
	Kind     string                 `json:"kind"`
	Group    string                 `json:"group"`
	CmdStart time.Duration          `json:"cmd_start_ns"` // carpkvctl local add-/remove-group started
	CmdEnd   time.Duration          `json:"cmd_end_ns"`
	Start    time.Duration          `json:"start_ns"` // recorded (StartedAt)
	End      time.Duration          `json:"end_ns"`   // done (FinishedAt)
	Phases   []Phase                `json:"phases"`
	Record   *wire.RingChangeStatus `json:"record"`
	Before   map[string]int         `json:"keys_before"`
	After    map[string]int         `json:"keys_after"`
	Minimal  int                    `json:"minimal"`
	Share    float64                `json:"share"`
	// moving says whether key i changes owner (not serialised).
	moving []bool
}

// Results is everything a run measured; results.json holds it and
// `bench-reshard render` draws the page and the plot from it again.
type Results struct {
	Command    string        `json:"command"`
	Via        string        `json:"via,omitempty"` // make's command line
	Date       time.Time     `json:"date"`
	Took       time.Duration `json:"took_ns"`
	CPUs       int           `json:"cpus"`
	CPUModel   string        `json:"cpu_model"`
	Kernel     string        `json:"kernel"`
	GoVersion  string        `json:"go_version"`
	LoadBefore string        `json:"loadavg_before"`
	LoadAfter  string        `json:"loadavg_after"`
	LoadDuring []string      `json:"loadavg_during"` // /proc/loadavg at each change's start

	Keys      int           `json:"keys"`
	KeySize   int           `json:"key_size"`
	ValueSize int           `json:"value_size"`
	Clients   int           `json:"clients"`
	PutPct    int           `json:"put_pct"`
	Steady    time.Duration `json:"steady_ns"`
	Threshold time.Duration `json:"threshold_ns"`

	FillTook  time.Duration `json:"fill_ns"`
	LoadEnd   time.Duration `json:"load_end_ns"`
	Changes   []*change     `json:"changes"`
	Series    []Point       `json:"series"`
	Retries   []int         `json:"key_moving_retries_per_s"`
	OtherRtr  []int         `json:"other_retries_per_s"`
	Summaries []Summary     `json:"summaries"`
	Whole     Window        `json:"whole"`
	Missing   int           `json:"missing_after"` // keys not found by the final read of every key (-1: not checked)
	Errors    []string      `json:"errors,omitempty"`
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench-reshard: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return strings.TrimSpace(string(b))
	}
	return strings.Join(f[:3], " ")
}

// run starts the cluster, loads it, runs the load through an add and a
// remove, and stops everything.
func run(o options) (*Results, error) {
	began := time.Now()
	res := &Results{
		Command: o.Command, Via: o.Via, Date: began.UTC(), CPUs: runtime.NumCPU(), CPUModel: cpuModel(), Kernel: kernel(),
		GoVersion: runtime.Version(), LoadBefore: loadavg(), Keys: o.Keys, KeySize: o.KeySize, ValueSize: o.ValueSize,
		Clients: o.Clients, PutPct: o.PutPct, Steady: o.Steady, Threshold: o.Threshold, Missing: -1,
	}
	dir, err := filepath.Abs(filepath.Join(o.Work, "cluster"))
	if err != nil {
		return nil, err
	}
	ctl, err := filepath.Abs(filepath.Join(o.Bin, "carpkvctl"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Work, 0o755); err != nil {
		return nil, err
	}
	env := append(os.Environ(), "CARPKV_LOCAL_DIR="+dir)
	carpkvctl := func(ctx context.Context, logName string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, ctl, args...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout = &out
		logPath := filepath.Join(o.Work, logName)
		f, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cmd.Stderr = f
		if err := cmd.Run(); err != nil {
			return out.Bytes(), fmt.Errorf("carpkvctl %s: %v (stderr in %s)\n%s", strings.Join(args, " "), err, logPath, out.String())
		}
		return out.Bytes(), nil
	}

	logf("starting a local 3×3 cluster in %s (load average %s)", dir, res.LoadBefore)
	if _, err := carpkvctl(context.Background(), "up.log", append([]string{"local", "up", "--groups", "3", "--replicas", "3", "--fresh"}, agentRaftDefaults...)...); err != nil {
		return nil, err
	}
	if !o.Keep {
		defer func() {
			saveLogs(dir, filepath.Join(o.Work, "logs"))
			logf("stopping the cluster (local down --purge)")
			if _, err := carpkvctl(context.Background(), "down.log", "local", "down", "--purge"); err != nil {
				logf("%v", err)
			}
		}()
	}
	st, err := localcluster.Load(dir)
	if err != nil {
		return nil, err
	}

	// The load's client logs its retries to a counter.
	t0 := time.Now()
	counter := newRetryCounter(t0)
	client, err := kvclient.New(kvclient.Config{Addrs: st.HTTPAddrs(), MaxIdleConnsPerHost: max(kvclient.DefaultMaxIdleConnsPerHost, o.Clients),
		BatchConcurrency: o.LoadConc, Logger: slog.New(counter)})
	if err != nil {
		return nil, err
	}
	defer client.Close()
	admin, err := kvclient.New(kvclient.Config{Addrs: st.HTTPAddrs(), RequestTimeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	defer admin.Close()

	logf("loading %d keys of %d bytes with MultiPut (%d a batch, %d in flight per group)", o.Keys, o.ValueSize, o.LoadBatch, o.LoadConc)
	last := time.Now()
	res.FillTook, err = fill(context.Background(), client, o.Keys, o.KeySize, o.ValueSize, o.LoadBatch, func(done int) {
		if time.Since(last) > 10*time.Second || done == o.Keys {
			logf("  %d/%d keys", done, o.Keys)
			last = time.Now()
		}
	})
	if err != nil {
		return res, err
	}
	logf("loaded in %v (%.0f keys/s)", res.FillTook.Round(time.Millisecond), float64(o.Keys)/res.FillTook.Seconds())

	// The load runs for the whole rest of the run.
	l := &load{c: client, keys: o.Keys, keySize: o.KeySize, valueSize: o.ValueSize, putPct: o.PutPct, timeout: o.OpTimeout}
	lctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	l.t0 = time.Now()
	counter.t0 = l.t0
	since := func(t time.Time) time.Duration { return t.Sub(l.t0) }
	var wg sync.WaitGroup
	wg.Go(func() { l.run(lctx, o.Clients, o.Seed) })
	progress := func(what string) {
		logf("  %s: %d ops, %d errors (load average %s)", what, l.done.Load(), l.errs.Load(), loadavg())
	}

	// The watcher records every phase of every change it sees.
	w := &watcher{c: admin, t0: l.t0}
	wctx, stopWatch := context.WithCancel(context.Background())
	var wwg sync.WaitGroup
	wwg.Go(func() { w.run(wctx) })

	steady := func(what string) {
		logf("steady load for %v (%s)", o.Steady, what)
		time.Sleep(o.Steady)
		progress(what)
	}
	doChange := func(kind, group string, args ...string) error {
		ch := &change{Kind: kind, Group: group}
		res.Changes = append(res.Changes, ch)
		var err error
		if ch.Before, err = keyCounts(admin, dir); err != nil {
			return err
		}
		res.LoadDuring = append(res.LoadDuring, loadavg())
		logf("%s %s: carpkvctl %s", kind, group, strings.Join(args, " "))
		ch.CmdStart = since(time.Now())
		out, err := carpkvctl(context.Background(), kind+".log", args...)
		ch.CmdEnd = since(time.Now())
		if err != nil {
			return err
		}
		var rec wire.RingChangeStatus
		if kind == wire.ChangeRemoveGroup {
			var v struct {
				Change *wire.RingChangeStatus `json:"change"`
			}
			if err := json.Unmarshal(out, &v); err != nil || v.Change == nil {
				return fmt.Errorf("%s: cannot read the final record: %v\n%s", kind, err, out)
			}
			rec = *v.Change
		} else if err := json.Unmarshal(out, &rec); err != nil {
			return fmt.Errorf("%s: cannot read the final record: %v\n%s", kind, err, out)
		}
		if rec.Group == "" {
			return fmt.Errorf("%s: the final record names no group:\n%s", kind, out)
		}
		ch.Group, ch.Record = rec.Group, &rec
		ch.Phases = w.phases(rec.To.Epoch)
		ch.fixTimes(l.t0)
		if ch.After, err = keyCounts(admin, dir); err != nil {
			return err
		}
		ch.Minimal, ch.moving, ch.Share = minimalMove(rec, o.Keys, o.KeySize)
		logf("%s %s done in %v (recorded %v): %d keys to move by CARP, counts %v → %v", kind, ch.Group,
			(ch.CmdEnd - ch.CmdStart).Round(time.Millisecond), (ch.End - ch.Start).Round(time.Millisecond), ch.Minimal, ch.Before, ch.After)
		progress(kind)
		return nil
	}

	var runErr error
	steady("before the add")
	if err := doChange(wire.ChangeAddGroup, "", "-o", "json", "local", "add-group"); err != nil {
		runErr = err
	} else {
		steady("after the add")
		if err := doChange(wire.ChangeRemoveGroup, o.Remove, "-o", "json", "local", "remove-group", o.Remove); err != nil {
			runErr = err
		} else {
			steady("after the remove")
		}
	}
	stopLoad()
	wg.Wait()
	res.LoadEnd = since(time.Now())
	stopWatch()
	wwg.Wait()
	res.LoadAfter = loadavg()
	// Exact phase times from the agents' logs, where the polling missed
	// a short phase.
	if st2, err := localcluster.Load(dir); err == nil {
		logPhases := agentLogPhases(st2, l.t0)
		for _, ch := range res.Changes {
			if ch.Record != nil {
				ch.Phases = mergePhases(ch.Phases, logPhases[ch.Record.To.Epoch])
				ch.fixTimes(l.t0)
			}
		}
	}
	if runErr != nil {
		res.Errors = append(res.Errors, runErr.Error())
	}
	if runErr == nil && o.Verify {
		logf("reading every key back (MultiGet)")
		res.Missing, err = verify(client, o.Keys, o.KeySize)
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
		}
		logf("  %d keys missing", res.Missing)
	}

	ops := l.all()
	if err := saveOps(filepath.Join(o.Work, "ops.bin"), ops); err != nil {
		logf("keeping the operations: %v", err)
	}
	logf("analysing %d operations", len(ops))
	analyse(res, ops)
	moving, other := counter.counts(len(res.Series))
	res.Retries, res.OtherRtr = moving, other
	res.Took = time.Since(began)
	return res, runErr
}

// analyse fills the series and the per-change summaries from the ops.
func analyse(res *Results, ops []Op) {
	res.Series = Series(ops, time.Second, res.LoadEnd)
	res.Whole = WindowOf(ops, 0, res.LoadEnd)
	for _, ch := range res.Changes {
		if ch.Record == nil {
			continue
		}
		s := summarise(ch, ops, res.Threshold)
		res.Summaries = append(res.Summaries, s)
	}
}

// keyCounts asks each group's leader how many keys it holds.
func keyCounts(c *kvclient.Client, dir string) (map[string]int, error) {
	st, err := localcluster.Load(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, n := range st.Active() {
		if !n.Alive() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		info, err := c.Self(ctx, n.HTTPAddr)
		cancel()
		if err != nil {
			continue
		}
		if info.State == "Leader" {
			out[info.Group] = info.Keys
		}
	}
	for _, g := range st.ActiveGroups() {
		if _, ok := out[g]; !ok {
			return out, fmt.Errorf("key counts: no leader of group %s answered", g)
		}
	}
	return out, nil
}

// minimalMove counts the keys of [0, n) whose CARP owner differs between
// the change's two rings, marks them, and returns the changing group's
// share of the ring that has it.
func minimalMove(rec wire.RingChangeStatus, n, keySize int) (int, []bool, float64) {
	from, err1 := ringOf(rec.From)
	to, err2 := ringOf(rec.To)
	if err1 != nil || err2 != nil {
		logf("cannot build the rings of the change: %v %v", err1, err2)
		return 0, nil, 0
	}
	moving := make([]bool, n)
	count := 0
	key := make([]byte, 0, keySize)
	for i := range n {
		key = keyOf(key[:0], i, keySize)
		if from.Owner(key) != to.Owner(key) {
			moving[i] = true
			count++
		}
	}
	share := to.Share(rec.Group)
	if rec.Kind == wire.ChangeRemoveGroup {
		share = from.Share(rec.Group)
	}
	return count, moving, share
}

func ringOf(s wire.RingSpec) (*carp.Ring, error) {
	mode := carp.ModeStrong
	if s.Mode != "" {
		m, err := carp.ParseMode(s.Mode)
		if err != nil {
			return nil, err
		}
		mode = m
	}
	var ms []carp.Member
	for _, g := range s.Groups {
		ms = append(ms, carp.Member{ID: g.ID, Weight: g.Weight})
	}
	return carp.New(ms, carp.WithMode(mode), carp.WithEpoch(s.Epoch))
}

// verify reads every key back and counts the absent ones.
func verify(c *kvclient.Client, n, keySize int) (int, error) {
	missing := 0
	const batch = 20000
	for lo := 0; lo < n; lo += batch {
		keys := make([][]byte, 0, batch)
		for i := lo; i < min(lo+batch, n); i++ {
			keys = append(keys, keyOf(nil, i, keySize))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		rs, _ := c.MultiGet(ctx, keys)
		cancel()
		for _, r := range rs {
			switch {
			case r.Err == nil:
			case classify(r.Err) == classNotFound:
				missing++
			default:
				return missing, fmt.Errorf("reading key %s back: %w", r.Key, r.Err)
			}
		}
	}
	return missing, nil
}

// watcher polls the coordinator's record of the ring change and notes
// when each phase began (PhaseAt, on the coordinator's clock: the same
// machine's).
type watcher struct {
	c  *kvclient.Client
	t0 time.Time

	mu   sync.Mutex
	seen map[uint64]map[string]time.Duration // epoch → phase → start
}

func (w *watcher) run(ctx context.Context) {
	w.seen = map[uint64]map[string]time.Duration{}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		a, err := w.c.RingChangeStatus(qctx)
		cancel()
		if err == nil {
			for _, st := range []*wire.RingChangeStatus{a.Active, a.Last} {
				if st == nil {
					continue
				}
				w.note(st.To.Epoch, st.Phase, st.PhaseAt)
				if st.FinishedAt > 0 {
					w.note(st.To.Epoch, wire.PhaseDone, st.FinishedAt)
				}
				w.note(st.To.Epoch, wire.PhasePrepare, st.StartedAt)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *watcher) note(epoch uint64, phase string, atMs int64) {
	if atMs == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.seen[epoch]
	if m == nil {
		m = map[string]time.Duration{}
		w.seen[epoch] = m
	}
	if _, ok := m[phase]; !ok {
		m[phase] = time.UnixMilli(atMs).Sub(w.t0)
	}
}

func (w *watcher) phases(epoch uint64) []Phase {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Phase
	for name, at := range w.seen[epoch] {
		out = append(out, Phase{Name: name, At: at})
	}
	sortPhases(out)
	return out
}

func sortPhases(ps []Phase) {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].At < ps[j].At })
}

// mergePhases adds the phases of b that a lacks.
func mergePhases(a, b []Phase) []Phase {
	have := map[string]bool{}
	for _, p := range a {
		have[p.Name] = true
	}
	for _, p := range b {
		if !have[p.Name] {
			a = append(a, p)
			have[p.Name] = true
		}
	}
	sortPhases(a)
	return a
}

// agentLogPhases reads every agent's log for the coordinator's
// "ring change: phase" lines: epoch → phases, since t0.
func agentLogPhases(st *localcluster.State, t0 time.Time) map[uint64][]Phase {
	out := map[uint64][]Phase{}
	for _, n := range st.Nodes {
		f, err := os.Open(n.Log)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if at, epoch, phase, ok := parsePhaseLine(sc.Text()); ok {
				out[epoch] = mergePhases(out[epoch], []Phase{{Name: phase, At: at.Sub(t0)}})
			}
		}
		f.Close()
	}
	return out
}

var (
	// slog's text (time=X) and JSON ("time":"X") forms.
	reTime  = regexp.MustCompile(`\btime(?:=|":")([^"\s]+)`)
	reEpoch = regexp.MustCompile(`\bepoch(?:=|":)(\d+)`)
	rePhase = regexp.MustCompile(`\bphase(?:=|":")(\w+)`)
)

// parsePhaseLine reads the coordinator's log line of a new phase, as
// slog's text handler writes it
// (`time=2026-11-26T04:40:01.123Z level=INFO msg="ring change: phase" epoch=2 phase=copy`)
// or its JSON handler.
func parsePhaseLine(line string) (at time.Time, epoch uint64, phase string, ok bool) {
	if !strings.Contains(line, `"ring change: phase"`) {
		return at, 0, "", false
	}
	t, e, p := reTime.FindStringSubmatch(line), reEpoch.FindStringSubmatch(line), rePhase.FindStringSubmatch(line)
	if t == nil || e == nil || p == nil {
		return at, 0, "", false
	}
	at, err := time.Parse(time.RFC3339Nano, t[1])
	if err != nil {
		return at, 0, "", false
	}
	if _, err := fmt.Sscan(e[1], &epoch); err != nil {
		return at, 0, "", false
	}
	return at, epoch, p[1], true
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return "Linux " + strings.TrimSpace(string(b))
}

// saveLogs copies the agents' logs out of the cluster's directory before
// local down --purge deletes it: they hold the phase lines and timings.
func saveLogs(dir, to string) {
	st, err := localcluster.Load(dir)
	if err != nil {
		return
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		logf("keeping the logs: %v", err)
		return
	}
	for _, n := range st.Nodes {
		b, err := os.ReadFile(n.Log)
		if err != nil {
			continue
		}
		_ = os.WriteFile(filepath.Join(to, n.ID+".log"), b, 0o644)
	}
	logf("agents' logs kept in %s", to)
}

// saveOps writes every operation (24 bytes each, little endian) so that
// `bench-reshard render -ops` can analyse the run again.
func saveOps(path string, ops []Op) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if err := binary.Write(w, binary.LittleEndian, ops); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	logf("operations kept in %s", path)
	return f.Close()
}

func loadOps(path string) ([]Op, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ops := make([]Op, len(b)/binary.Size(Op{}))
	return ops, binary.Read(bytes.NewReader(b), binary.LittleEndian, ops)
}

// fixTimes sets the change's start and end from its record, else from
// the phases seen (prepare, done): when a change removes the coordinator,
// carpkvctl may print the last record it saw with the phase set to done
// and no finish time.
func (ch *change) fixTimes(t0 time.Time) {
	ch.Start, ch.End = 0, 0
	if ch.Record != nil && ch.Record.StartedAt > 0 {
		ch.Start = time.UnixMilli(ch.Record.StartedAt).Sub(t0)
	}
	if ch.Record != nil && ch.Record.FinishedAt > 0 {
		ch.End = time.UnixMilli(ch.Record.FinishedAt).Sub(t0)
	}
	for _, p := range ch.Phases {
		switch {
		case p.Name == "prepare" && ch.Start == 0:
			ch.Start = p.At
		case p.Name == "done" && ch.End == 0:
			ch.End = p.At
		}
	}
}
