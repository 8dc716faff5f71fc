package carp_test

import (
	"fmt"
	"testing"

	"github.com/carpkv/carpkv/carp"
	"github.com/carpkv/carpkv/carp/internal/ringstat"
)

var modes = []carp.Mode{carp.ModeSpec, carp.ModeStrong}

// equalMembers names members g000, g001, ... so that IDs sort in creation
// order and member N is the one a ring of N grows by.
func equalMembers(n int) []carp.Member {
	ms := make([]carp.Member, n)
	for i := range ms {
		ms[i] = carp.Member{ID: fmt.Sprintf("g%03d", i), Weight: 1}
	}
	return ms
}

func memberIDs(ms []carp.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

var sinkOwner string

// BenchmarkOwner measures one Owner call: a score per member, so the cost
// grows linearly with the ring.
func BenchmarkOwner(b *testing.B) {
	const nkeys = 4096 // a power of two, cycled through with a mask
	for _, mode := range modes {
		for _, n := range []int{3, 16, 64, 256, 1024} {
			for _, keyLen := range []int{16, 64} {
				b.Run(fmt.Sprintf("mode=%v/members=%d/keylen=%d", mode, n, keyLen), func(b *testing.B) {
					r, err := carp.New(equalMembers(n), carp.WithMode(mode))
					if err != nil {
						b.Fatal(err)
					}
					keys := ringstat.RandomKeys(nkeys, keyLen, 1)
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						sinkOwner = r.Owner(keys[i&(nkeys-1)])
						i++
					}
				})
			}
		}
	}
}

// BenchmarkBalance places 100k sequential keys (user:0 ...) on N equal
// members and reports how evenly they spread and how many move when one
// member is added. One iteration is one full computation; the metrics are
// the same every iteration.
//
//	max/mean           busiest member over the mean load
//	cv_ratio           coefficient of variation over the multinomial ideal sqrt((N-1)/K)
//	moved_frac         fraction of keys whose owner changes on adding member N
//	moved_ideal_ratio  moved_frac over the minimum 1/(N+1)
//	violations         keys that moved between two old members (0 when minimal)
func BenchmarkBalance(b *testing.B) {
	keys := ringstat.SequentialKeys(100_000)
	for _, mode := range modes {
		for _, n := range []int{16, 64, 256} {
			b.Run(fmt.Sprintf("mode=%v/members=%d", mode, n), func(b *testing.B) {
				before, after := equalMembers(n), equalMembers(n+1)
				var (
					bal ringstat.Balance
					mv  ringstat.Movement
				)
				for b.Loop() {
					bal, mv = balanceAndMovement(b, mode, before, after, keys)
				}
				b.ReportMetric(bal.MaxOverMean, "max/mean")
				b.ReportMetric(bal.CVRatio, "cv_ratio")
				b.ReportMetric(mv.Fraction, "moved_frac")
				b.ReportMetric(mv.Ratio, "moved_ideal_ratio")
				b.ReportMetric(float64(mv.Violations), "violations")
			})
		}
	}
}

func balanceAndMovement(b *testing.B, mode carp.Mode, before, after []carp.Member, keys [][]byte) (ringstat.Balance, ringstat.Movement) {
	rb, err := carp.New(before, carp.WithMode(mode))
	if err != nil {
		b.Fatal(err)
	}
	ra, err := carp.New(after, carp.WithMode(mode))
	if err != nil {
		b.Fatal(err)
	}
	ob := ringstat.Owners(ringstat.Ring(mode.String(), rb), keys)
	oa := ringstat.Owners(ringstat.Ring(mode.String(), ra), keys)
	counts, err := ringstat.Counts(ob, memberIDs(before))
	if err != nil {
		b.Fatal(err)
	}
	mv, err := ringstat.Move(before, after, ob, oa)
	if err != nil {
		b.Fatal(err)
	}
	return ringstat.BalanceOf(counts), mv
}
