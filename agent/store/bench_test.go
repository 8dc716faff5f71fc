package store

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkApplyBatch applies batches of puts (16-byte keys, 256-byte
// values) over a key space of 65536 keys, with and without fsync. One op is
// one batch; entry/s is the throughput in entries.
func BenchmarkApplyBatch(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		for _, size := range []int{1, 64, 512} {
			name := fmt.Sprintf("fsync=%v/batch=%d", !noSync, size)
			b.Run(name, func(b *testing.B) {
				s, err := Open(b.TempDir(), Options{NoSync: noSync, Group: testGroup})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				value := make([]byte, 256)
				entries := make([]*raft.Log, size)
				var index uint64
				b.SetBytes(int64(size * (16 + 256)))
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					for j := range entries {
						index++
						key := binary.BigEndian.AppendUint64([]byte("key-0000"), index%65536)
						entries[j] = &raft.Log{Index: index, Term: 1, Type: raft.LogCommand,
							Data: Command{Op: OpPut, Key: key, Value: value}.Marshal()}
					}
					s.ApplyBatch(entries)
				}
				b.ReportMetric(float64(index)/time.Since(start).Seconds(), "entry/s")
			})
		}
	}
}
