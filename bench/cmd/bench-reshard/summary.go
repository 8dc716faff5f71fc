package main

import (
	"time"
)

// Summary is one change's figures, against the goals of issue 11.
type Summary struct {
	Kind  string `json:"kind"`
	Group string `json:"group"`

	Command  time.Duration `json:"command_ns"`  // carpkvctl local add-/remove-group, agents' start and stop included
	Recorded time.Duration `json:"recorded_ns"` // from the change's record to done
	Phases   []PhaseTook   `json:"phases"`
	// Migration is from the start of the copy phase to done; Transfer
	// from the copy to activate (the keys travelling, before cleanup).
	Migration   time.Duration `json:"migration_ns"`
	Transfer    time.Duration `json:"transfer_ns"`
	KeysPerSec  float64       `json:"keys_per_s"`
	MBPerSec    float64       `json:"mb_per_s"`
	XferKeysSec float64       `json:"transfer_keys_per_s"`

	Movement Movement `json:"movement"`

	Before Window `json:"before"` // the 10 s before the command began
	During Window `json:"during"` // from the change's record to done

	Outages       []Outage      `json:"outages"` // longest first, at most 10
	OutagesOver   int           `json:"outages_over_threshold"`
	OutagesOver1s int           `json:"outages_over_1s"`
	OutagesOpen   int           `json:"outages_open"` // ending in a failure: the length is a lower bound
	Longest       time.Duration `json:"longest_ns"`
	LongestMoving time.Duration `json:"longest_moving_ns"` // on a key that changes owner
	LongestStill  time.Duration `json:"longest_still_ns"`  // on a key that stays

	Goals []Goal `json:"goals"`
}

// PhaseTook is how long one phase lasted.
type PhaseTook struct {
	Name string        `json:"name"`
	At   time.Duration `json:"at_ns"`
	Took time.Duration `json:"took_ns"`
	// Load is the load's operations sent during the phase.
	Load Window `json:"load"`
}

// Goal is one bound of issue 11 and whether the run met it.
type Goal struct {
	What     string `json:"what"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

// The goals of issue 11.
const (
	goalDeviation   = 0.01
	goalUnavailable = time.Second
	goalP99Ratio    = 3.0
	goalKeysPerSec  = 20000
	beforeWindow    = 10 * time.Second
)

func summarise(ch *change, ops []Op, threshold time.Duration) Summary {
	s := Summary{Kind: ch.Kind, Group: ch.Group, Command: ch.CmdEnd - ch.CmdStart, Recorded: ch.End - ch.Start}
	for i, p := range ch.Phases {
		pt := PhaseTook{Name: p.Name, At: p.At}
		if i+1 < len(ch.Phases) {
			pt.Took = ch.Phases[i+1].At - p.At
			pt.Load = WindowOf(ops, p.At, ch.Phases[i+1].At)
		}
		s.Phases = append(s.Phases, pt)
	}
	var pairs []Pair
	for _, p := range ch.Record.Pairs {
		pairs = append(pairs, Pair{Source: p.Source, Dest: p.Dest, Keys: p.Keys, Bytes: p.Bytes})
	}
	s.Movement = CheckMovement(ch.Kind, ch.Group, ch.Before, ch.After, pairs, ch.Share, ch.Minimal)

	if from, to, ok := PhaseSpan(ch.Phases, "copy", "done"); ok && to > from {
		s.Migration = to - from
		s.KeysPerSec = float64(s.Movement.Moved) / s.Migration.Seconds()
		s.MBPerSec = float64(s.Movement.SentBytes) / s.Migration.Seconds() / 1e6
	}
	if from, to, ok := PhaseSpan(ch.Phases, "copy", "activate"); ok && to > from {
		s.Transfer = to - from
		s.XferKeysSec = float64(s.Movement.Moved) / s.Transfer.Seconds()
	}

	s.Before = WindowOf(ops, max(ch.CmdStart-beforeWindow, 0), ch.CmdStart)
	s.During = WindowOf(ops, ch.Start, ch.End)

	all := Outages(ops, threshold, ch.Start, ch.End)
	for i := range all {
		o := &all[i]
		if int(o.Key) < len(ch.moving) {
			o.Moving = ch.moving[o.Key]
		}
		if o.Open {
			s.OutagesOpen++
		}
		if o.Length() > time.Second {
			s.OutagesOver1s++
		}
		if o.Moving {
			s.LongestMoving = max(s.LongestMoving, o.Length())
		} else {
			s.LongestStill = max(s.LongestStill, o.Length())
		}
	}
	s.OutagesOver = len(all)
	if len(all) > 0 {
		s.Longest = all[0].Length()
	}
	s.Outages = all[:min(len(all), 10)]
	s.Goals = goals(s)
	return s
}

func goals(s Summary) []Goal {
	m := s.Movement
	ratio := 0.0
	if s.Before.Latency.P99 > 0 {
		ratio = float64(s.During.Latency.P99) / float64(s.Before.Latency.P99)
	}
	failed := s.During.Failed()
	unknown := s.During.Outcomes[classNames[classTimeout]]
	return []Goal{
		{What: "keys moved within 1% of the ideal",
			Measured: fmtPct(m.DevIdeal) + " (" + fmtInt(m.Moved) + " moved, ideal " + fmtInt(int(m.Ideal+0.5)) + ")",
			Met:      m.DevIdeal <= goalDeviation},
		{What: "each to or from the changing group only", Measured: yesNo(m.OnlyChanging), Met: m.OnlyChanging},
		{What: "zero failed operations during the change", Measured: fmtInt(failed), Met: failed == 0},
		{What: "no unknown outcomes (timeouts)", Measured: fmtInt(unknown), Met: unknown == 0},
		{What: "no key unavailable longer than 1 s", Measured: fmtDur(s.Longest), Met: s.Longest <= goalUnavailable},
		{What: "p99 during the change ≤ 3× the p99 before it",
			Measured: fmtRatio(ratio) + " (" + fmtDur(s.During.Latency.P99) + " / " + fmtDur(s.Before.Latency.P99) + ")",
			Met:      ratio > 0 && ratio <= goalP99Ratio},
		{What: "migration ≥ 20,000 keys/s while serving", Measured: fmtF(s.KeysPerSec, 0) + " keys/s", Met: s.KeysPerSec >= goalKeysPerSec},
	}
}
