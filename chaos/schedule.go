package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Kind is a kind of fault the nemesis injects. Every fault heals.
type Kind string

// The fault kinds. docs/testing.md has the matrix of what each checks.
const (
	// KillLeader: SIGKILL the leader of a group, restart it after the hold.
	// The time until the group acknowledges a write again is measured.
	KillLeader Kind = "kill-leader"
	// KillMember: SIGKILL a random member of a group (the leader too, by
	// chance), restart it after the hold.
	KillMember Kind = "kill-member"
	// KillMinority: SIGKILL a minority of every group at once.
	KillMinority Kind = "kill-minority"
	// PauseLeader: freeze the leader of a group (SIGSTOP, or the cgroup
	// freezer of docker pause), thaw it after the hold: a leader that
	// wakes up believing it still leads.
	PauseLeader Kind = "pause-leader"
	// PauseMember: freeze a random member, thaw it after the hold.
	PauseMember Kind = "pause-member"
	// PartitionLeader: cut the leader of a group off from every other agent
	// (clients still reach it).
	PartitionLeader Kind = "partition-leader"
	// PartitionSplit: a minority of every group on one side, everyone else
	// on the other.
	PartitionSplit Kind = "partition-split"
	// PartitionClients: cut every member of a group off from the clients
	// (the host); the agents still see each other.
	PartitionClients Kind = "partition-clients"
	// PartitionOneWay: drop the packets from a group's leader to its
	// followers, or from the followers to the leader; the other direction
	// still flows.
	PartitionOneWay Kind = "partition-oneway"
	// TransferLeadership: ask a group's leader to hand leadership to a
	// random follower.
	TransferLeadership Kind = "transfer-leadership"
	// ReplaceMember: remove a member (the leader too, by chance) and add a
	// fresh one: a new container with a new address, node ID and an empty
	// data dir, joining through --join.
	ReplaceMember Kind = "replace-member"
	// RestartGroup: stop every member of a group at once (SIGKILL or
	// SIGTERM), then start them all.
	RestartGroup Kind = "restart-group"

	// Ring changes (ringchange.go), each started through kvclient and
	// awaited until the coordinator records it done, while the clients
	// run; the variant adds a fault mid-change (see Variants).
	//
	// RingAddGroup: add the standby group (a removed group first gets
	// its data wiped and is started again as a fresh standby).
	RingAddGroup Kind = "ring-add-group"
	// RingRemoveGroup: remove a group of the ring (the coordinator's own
	// included); it becomes the standby.
	RingRemoveGroup Kind = "ring-remove-group"
	// RingSetWeight: give a group of the ring another weight.
	RingSetWeight Kind = "ring-set-weight"
)

// AllKinds lists every fault kind, in the order of docs/testing.md.
var AllKinds = []Kind{
	KillLeader, KillMember, KillMinority, PauseLeader, PauseMember,
	PartitionLeader, PartitionSplit, PartitionClients, PartitionOneWay,
	TransferLeadership, ReplaceMember, RestartGroup,
	RingAddGroup, RingRemoveGroup, RingSetWeight,
}

// ParseKinds parses a comma-separated list of kinds; "" or "all" is every
// kind.
func ParseKinds(s string) ([]Kind, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return append([]Kind(nil), AllKinds...), nil
	}
	var out []Kind
	for _, f := range strings.Split(s, ",") {
		k := Kind(strings.TrimSpace(f))
		if !k.Valid() {
			return nil, fmt.Errorf("unknown fault kind %q (known: %s)", k, joinKinds(AllKinds))
		}
		out = append(out, k)
	}
	return out, nil
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool {
	for _, a := range AllKinds {
		if a == k {
			return true
		}
	}
	return false
}

func joinKinds(ks []Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ",")
}

// isPartition reports whether k needs iptables.
func (k Kind) isPartition() bool {
	switch k {
	case PartitionLeader, PartitionSplit, PartitionClients, PartitionOneWay:
		return true
	}
	return false
}

// isRingChange reports whether k is a ring change.
func (k Kind) isRingChange() bool {
	switch k {
	case RingAddGroup, RingRemoveGroup, RingSetWeight:
		return true
	}
	return false
}

// CISeeds are the seeds make chaos runs by default: one round each, and
// together every kind in every variant, the ring changes' variants over
// the three ring kinds (TestCISeedsCoverEveryVariant).
var CISeeds = []uint64{1, 3, 7}

// Step is one fault of a schedule: everything random about it is drawn
// from the seed when the schedule is made, so a seed always gives the same
// faults in the same order against the same groups and member positions.
// What "the leader" is can only be known when the step runs.
type Step struct {
	N     int    `json:"n"`
	Kind  Kind   `json:"kind"`
	Group int    `json:"group"` // index of the target group (sorted IDs)
	Pick  uint64 `json:"pick"`  // seeds the choice of members
	// Variant picks how the fault is done, for kinds with several ways
	// (see Variants).
	Variant int           `json:"variant"`
	Hold    time.Duration `json:"hold_ns"`
	Gap     time.Duration `json:"gap_ns"` // quiet time after the cluster recovered
}

// rng is the step's own source for choosing members and variants.
func (s Step) rng() *rand.Rand { return rand.New(rand.NewPCG(s.Pick, uint64(s.N))) }

// Schedule draws an endless sequence of steps from a seed: rounds in which
// every kind appears once, in a shuffled order, so any prefix of
// len(kinds) steps covers every kind.
type Schedule struct {
	kinds  []Kind
	groups int
	rng    *rand.Rand
	round  []Kind
	n      int
}

// NewSchedule returns the schedule of seed over kinds, for a cluster of
// groups groups.
func NewSchedule(seed uint64, kinds []Kind, groups int) *Schedule {
	return &Schedule{kinds: kinds, groups: groups, rng: rand.New(rand.NewPCG(seed, 0x6361727063686173))}
}

// Next returns the next step.
func (s *Schedule) Next() Step {
	if len(s.round) == 0 {
		s.round = append([]Kind(nil), s.kinds...)
		s.rng.Shuffle(len(s.round), func(i, j int) { s.round[i], s.round[j] = s.round[j], s.round[i] })
		// A group can be removed only while the standby is in the ring:
		// adding first keeps every round from the first ring's shape
		// back to it (the nemesis copes with any order, at the cost of an
		// extra change without a fault).
		a, r := slices.Index(s.round, RingAddGroup), slices.Index(s.round, RingRemoveGroup)
		if a >= 0 && r >= 0 && r < a {
			s.round[a], s.round[r] = s.round[r], s.round[a]
		}
	}
	k := s.round[0]
	s.round = s.round[1:]
	st := Step{
		N:       s.n,
		Kind:    k,
		Group:   s.rng.IntN(s.groups),
		Pick:    s.rng.Uint64(),
		Variant: s.rng.IntN(Variants(k)),
		Hold:    holdFor(k, s.rng),
		Gap:     time.Duration(1000+s.rng.IntN(2000)) * time.Millisecond,
	}
	s.n++
	return st
}

// Variants is how many ways the nemesis has to inject k:
//   - pause-leader, pause-member: SIGSTOP/SIGCONT, or docker pause (the
//     cgroup freezer);
//   - partition-oneway: leader -> followers dropped, or followers -> leader;
//   - transfer-leadership: to a chosen follower, or to any;
//   - replace-member: SIGKILL then remove (a dead machine replaced), or
//     remove and leave the old member running with its old state for the
//     hold (a zombie next to its replacement), then destroy it;
//   - restart-group: SIGKILL all, or SIGTERM all (graceful);
//   - ring-add-group, ring-remove-group, ring-set-weight: the change alone
//     (0), with the coordinator group's leader killed (SIGKILL) mid-change
//     (1), with the leader of another group of the change (a source or a
//     destination) killed or frozen mid-change (2), or with a whole group
//     of the change restarted (SIGKILL all) mid-change (3).
func Variants(k Kind) int {
	switch k {
	case RingAddGroup, RingRemoveGroup, RingSetWeight:
		return ringVariants
	case PauseLeader, PauseMember, PartitionOneWay, TransferLeadership, ReplaceMember, RestartGroup:
		return 2
	}
	return 1
}

// holdFor draws how long a fault lasts before it heals: long enough to
// outlast an election (about a second with the default Raft timings), so
// that the cluster works through the fault and not only around it.
func holdFor(k Kind, r *rand.Rand) time.Duration {
	switch k {
	case TransferLeadership:
		return 0 // instantaneous; the step waits for the group to settle
	case RestartGroup:
		return time.Duration(1000+r.IntN(3000)) * time.Millisecond
	}
	return time.Duration(3000+r.IntN(4000)) * time.Millisecond
}
