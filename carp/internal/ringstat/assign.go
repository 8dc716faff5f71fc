package ringstat

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/carpkv/carpkv/carp"
)

// Assigner maps keys to member IDs. Implementations must be safe for
// concurrent use: Owners calls Owner from several goroutines.
type Assigner interface {
	Name() string
	Owner(key []byte) string
}

type named struct {
	name string
	*carp.Ring
}

func (n named) Name() string { return n.name }

// Ring adapts a carp ring to Assigner under the given name.
func Ring(name string, r *carp.Ring) Assigner { return named{name, r} }

// Ketama is a ketama-style consistent-hash ring as in libketama: each member
// gets 40 MD5 digests of "<id>-<i>" per unit of (weight/mean weight), each
// digest giving 4 little-endian 32-bit points; a key belongs to the first
// point at or after the little-endian first 4 bytes of md5(key), wrapping.
type Ketama struct {
	name   string
	points []uint32
	owners []string // owners[i] owns points[i]
}

// NewKetama builds a ketama ring with pointsPerMember points for a member of
// mean weight (160 in libketama). Digests per member are
// floor(weight/total * N * pointsPerMember/4), at least 1, as libketama
// computes them (it uses 40 for pointsPerMember/4).
func NewKetama(name string, members []carp.Member, pointsPerMember int) (*Ketama, error) {
	if len(members) == 0 {
		return nil, fmt.Errorf("ringstat: ketama needs members")
	}
	if pointsPerMember < 4 || pointsPerMember%4 != 0 {
		return nil, fmt.Errorf("ringstat: ketama points per member %d is not a positive multiple of 4", pointsPerMember)
	}
	var total float64
	for _, m := range members {
		total += m.Weight
	}
	type point struct {
		h     uint32
		owner string
	}
	var pts []point
	for _, m := range members {
		// Multiply before dividing so equal weights give exactly
		// pointsPerMember/4 digests; the epsilon absorbs rounding of total.
		digests := int(math.Floor(m.Weight*float64(len(members))*float64(pointsPerMember/4)/total + 1e-9))
		digests = max(digests, 1)
		buf := make([]byte, 0, len(m.ID)+12)
		for i := range digests {
			buf = append(buf[:0], m.ID...)
			buf = append(buf, '-')
			buf = strconv.AppendInt(buf, int64(i), 10)
			d := md5.Sum(buf)
			for h := range 4 {
				pts = append(pts, point{binary.LittleEndian.Uint32(d[h*4:]), m.ID})
			}
		}
	}
	// Ties (same point from two members) go to the smaller ID so the ring
	// does not depend on the order of members.
	slices.SortFunc(pts, func(a, b point) int {
		if a.h != b.h {
			if a.h < b.h {
				return -1
			}
			return 1
		}
		switch {
		case a.owner < b.owner:
			return -1
		case a.owner > b.owner:
			return 1
		}
		return 0
	})
	k := &Ketama{name: name, points: make([]uint32, len(pts)), owners: make([]string, len(pts))}
	for i, p := range pts {
		k.points[i], k.owners[i] = p.h, p.owner
	}
	return k, nil
}

// Name implements Assigner.
func (k *Ketama) Name() string { return k.name }

// Points is the number of points on the ring.
func (k *Ketama) Points() int { return len(k.points) }

// Owner implements Assigner.
func (k *Ketama) Owner(key []byte) string {
	d := md5.Sum(key)
	h := binary.LittleEndian.Uint32(d[:4])
	i, _ := slices.BinarySearch(k.points, h) // first point >= h
	if i == len(k.points) {
		i = 0
	}
	return k.owners[i]
}

// Jump is jump consistent hashing (Lamping and Veach, 2014) over the member
// IDs sorted ascending, keyed by carp.StrongKeyHash. It has no weights, and
// only the last bucket can be removed without remapping other keys: with IDs
// sorted, that is the member with the largest ID.
type Jump struct {
	name string
	ids  []string
}

// NewJump builds a jump hash over ids (copied and sorted).
func NewJump(name string, ids []string) (*Jump, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("ringstat: jump needs members")
	}
	s := slices.Clone(ids)
	slices.Sort(s)
	if len(slices.Compact(slices.Clone(s))) != len(s) {
		return nil, fmt.Errorf("ringstat: jump member IDs are not unique")
	}
	return &Jump{name: name, ids: s}, nil
}

// Name implements Assigner.
func (j *Jump) Name() string { return j.name }

// Owner implements Assigner.
func (j *Jump) Owner(key []byte) string {
	return j.ids[JumpHash(carp.StrongKeyHash(key), len(j.ids))]
}

// JumpHash is the jump consistent hash of the paper: the bucket in [0,
// buckets) of a 64-bit key.
func JumpHash(key uint64, buckets int) int {
	b, j := int64(-1), int64(0)
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// Owners returns a.Owner(key) for every key, computed on GOMAXPROCS
// goroutines; out[i] belongs to keys[i], so the result does not depend on
// scheduling.
func Owners(a Assigner, keys [][]byte) []string {
	out := make([]string, len(keys))
	// Workers claim small chunks in turn, so one slow worker (a descheduled
	// thread, a GC assist) does not leave the others idle at the end.
	const chunk = 8192
	var next atomic.Int64
	work := func() {
		for {
			lo := int(next.Add(chunk)) - chunk
			if lo >= len(keys) {
				return
			}
			for i := lo; i < min(lo+chunk, len(keys)); i++ {
				out[i] = a.Owner(keys[i])
			}
		}
	}
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), (len(keys)+chunk-1)/chunk) - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
	return out
}
