package loadgen

import (
	"hash/maphash"
	"sync"
)

// Versions remembers the last version a KV adapter saw of each key, so
// that its CAS can be one compare-and-swap against that version (see
// KV.CAS). It is sharded so that many workers rarely wait on one lock. The
// zero value is ready to use; 0 means absent (or never seen).
type Versions struct {
	once   sync.Once
	seed   maphash.Seed
	shards [64]versionShard
}

type versionShard struct {
	mu sync.Mutex
	m  map[string]uint64
}

func (v *Versions) shard(key []byte) *versionShard {
	v.once.Do(func() {
		v.seed = maphash.MakeSeed()
		for i := range v.shards {
			v.shards[i].m = map[string]uint64{}
		}
	})
	return &v.shards[maphash.Bytes(v.seed, key)%uint64(len(v.shards))]
}

// Get returns the last version set for key; 0 if none.
func (v *Versions) Get(key []byte) uint64 {
	s := v.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[string(key)]
}

// Set records version for key (0: absent).
func (v *Versions) Set(key []byte, version uint64) {
	s := v.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[string(key)] = version
}
