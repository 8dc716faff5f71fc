package chaos

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/carpkv/carpkv/kvclient"
)

// Converge waits, once the clients have stopped, until every member of
// every group holds the same data: the same applied index, the same value
// and version of every key of the group (read from each member's local
// state), and a key count equal to the number of those keys that exist,
// which also proves the group stores no key it does not own (every key
// ever written is in keys). It returns the converged state, or nil and
// the differences it saw last.
func Converge(ctx context.Context, c *Cluster, keys map[string]string, timeout time.Duration) (map[string]FinalValue, []string) {
	byGroup := map[string][]string{}
	for k, g := range keys {
		byGroup[g] = append(byGroup[g], k)
	}
	var state map[string]FinalValue
	var diffs []string
	err := poll(ctx, timeout, func() error {
		state, diffs = map[string]FinalValue{}, nil
		for _, g := range c.Groups() {
			gk := byGroup[g]
			sort.Strings(gk)
			d, err := convergeGroup(ctx, c, g, gk, state)
			if err != nil {
				return err
			}
			diffs = append(diffs, d...)
		}
		if len(diffs) > 0 {
			return fmt.Errorf("%d differences", len(diffs))
		}
		return nil
	})
	if err != nil {
		out := []string{fmt.Sprintf("members did not converge: %v", err)}
		if len(diffs) > 20 {
			diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
		}
		return nil, append(out, diffs...)
	}
	return state, nil
}

// convergeGroup compares the members of group, filling state with the
// first member's view; an error is a member that did not answer.
func convergeGroup(ctx context.Context, c *Cluster, group string, keys []string, state map[string]FinalValue) ([]string, error) {
	var diffs []string
	var ref string
	var refIndex uint64
	for i, a := range c.Members(group) {
		info, err := c.Self(ctx, a)
		if err != nil {
			return nil, err
		}
		exist := 0
		for _, k := range keys {
			v, err := c.StaleRead(ctx, a, k)
			if err != nil {
				return nil, fmt.Errorf("%s: stale read of %q: %w", a.ID, k, err)
			}
			if v.Exists {
				exist++
			}
			if i == 0 {
				state[k] = v
			} else if v != state[k] {
				diffs = append(diffs, fmt.Sprintf("group %s: %s has %s, %s has %s", group, ref, describeFinal(state[k]), a.ID, describeFinal(v)))
			}
		}
		if i == 0 {
			ref, refIndex = a.ID, info.AppliedIndex
		} else if info.AppliedIndex != refIndex {
			diffs = append(diffs, fmt.Sprintf("group %s: %s applied index %d, %s %d", group, ref, refIndex, a.ID, info.AppliedIndex))
		}
		if info.Keys != exist {
			diffs = append(diffs, fmt.Sprintf("group %s: %s holds %d keys, but %d of the group's keys exist there: it stores keys it does not own",
				group, a.ID, info.Keys, exist))
		}
	}
	return diffs, nil
}

func describeFinal(v FinalValue) string {
	if !v.Exists {
		return fmt.Sprintf("%q absent", v.Key)
	}
	return fmt.Sprintf("%q=%q@%d", v.Key, v.Value, v.Version)
}

// FinalReads reads every key linearizably through kv (retrying until an
// answer), records the reads in h, and returns what they found.
func FinalReads(ctx context.Context, kv KV, h *History, keys map[string]string) (map[string]FinalValue, []string) {
	final := map[string]FinalValue{}
	var problems []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		var last string
		for attempt := 0; attempt < 10; attempt++ {
			octx, cancel := context.WithTimeout(ctx, 5*time.Second)
			o, _ := Invoke(octx, kv, h, OpGet, k, "", 0)
			cancel()
			o.Client, o.Worker, o.Group = h.NewClient(), "final", keys[k]
			h.Add(o)
			if o.Outcome == OutcomeOK || o.Outcome == OutcomeNotFound {
				final[k] = FinalValue{Key: k, Exists: o.Outcome == OutcomeOK, Value: o.Value, Version: o.Version}
				break
			}
			last = o.Err
		}
		if _, ok := final[k]; !ok {
			problems = append(problems, fmt.Sprintf("key %q: no final read succeeded: %s", k, last))
		}
	}
	return final, problems
}

// CompareFinal checks that the linearizable final reads agree with the
// members' converged state.
func CompareFinal(converged, final map[string]FinalValue) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(final)) {
		if c, ok := converged[k]; ok && c != final[k] {
			out = append(out, fmt.Sprintf("key %q: the members hold %s, a linearizable read returned %s",
				k, describeFinal(c), describeFinal(final[k])))
		}
	}
	return out
}

var _ KV = (*kvclient.Client)(nil)
