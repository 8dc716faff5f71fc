package carp

// The strong-mix mode keeps CARP's structure (a member hash, a key hash, a
// combination scored per member, highest score wins, the draft's load-factor
// multipliers) and replaces the weak 32-bit mixing with 64-bit hashing and a
// full-avalanche finaliser on the combined value, so that the scores one key
// receives from different members behave as independent uniform draws. That
// independence is exactly what the draft's multiplier formula assumes.

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// fnv1a64 is FNV-1a over the octets of s; its weak avalanche is fixed by
// fmix64 wherever it is used.
func fnv1a64[T ~string | ~[]byte](s T) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

// fmix64 is MurmurHash3's 64-bit finaliser: a bijection in which every input
// bit flips each output bit with probability close to 1/2.
func fmix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// StrongKeyHash is the key hash of ModeStrong.
func StrongKeyHash(key []byte) uint64 { return fmix64(fnv1a64(key)) }

// StrongMemberHash is the member hash of ModeStrong.
func StrongMemberHash(id string) uint64 { return fmix64(fnv1a64(id)) }

// StrongCombine is the combination of ModeStrong: the finaliser applied to
// key^member, so every bit of both hashes reaches every bit of the score.
func StrongCombine(memberHash, keyHash uint64) uint64 { return fmix64(keyHash ^ memberHash) }
