package node

import (
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the node's Prometheus collectors; the HTTP layer registers
// them with its own request metrics and serves /metrics.
type Metrics struct {
	commitLatency prometheus.Histogram
	leaderChanges prometheus.Counter
	lostWrites    *prometheus.CounterVec
}

func newMetrics() *Metrics {
	return &Metrics{
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "carpkv_raft_commit_seconds",
			Help:    "Time from handing a write to Raft until it is committed and applied on the leader.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "carpkv_raft_leadership_changes_total",
			Help: "Leadership gained or lost by this node.",
		}),
		lostWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carpkv_raft_lost_writes_total",
			Help: "Writes in flight when this node lost leadership, by what became of them: applied, not_applied (overwritten, the client retries), unknown (the deadline passed first).",
		}, []string{"outcome"}),
	}
}

// Register adds the node's collectors, including gauges read from Raft and
// the store at scrape time, to reg.
func (n *Node) Register(reg prometheus.Registerer) {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(
		n.metrics.commitLatency,
		n.metrics.leaderChanges,
		n.metrics.lostWrites,
		gauge("carpkv_raft_state", "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.", func() float64 {
			return float64(n.raft.State())
		}),
		gauge("carpkv_raft_is_leader", "1 if this node is its group's leader.", func() float64 {
			if n.raft.State() == raft.Leader {
				return 1
			}
			return 0
		}),
		gauge("carpkv_raft_term", "Current Raft term.", func() float64 { return float64(n.raft.CurrentTerm()) }),
		gauge("carpkv_raft_commit_index", "Raft commit index.", func() float64 { return float64(n.raft.CommitIndex()) }),
		gauge("carpkv_raft_last_index", "Last Raft log index.", func() float64 { return float64(n.raft.LastIndex()) }),
		gauge("carpkv_store_applied_index", "Index applied to the state machine.", func() float64 { return float64(n.store.AppliedIndex()) }),
		gauge("carpkv_store_keys", "Keys in the state machine.", func() float64 { st := n.store.Stats(); return float64(st.Keys) }),
		gauge("carpkv_store_bytes", "Size of the state machine's file.", func() float64 { st := n.store.Stats(); return float64(st.Bytes) }),
	)
}
