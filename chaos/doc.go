// Package chaos proves carpkv's fault tolerance the way Jepsen and etcd's
// robustness tests do: a real multi-group cluster (each agent in its own
// Docker container with its own address), concurrent clients through
// kvclient, a nemesis injecting faults from a seeded schedule, every
// operation recorded, and the history checked for linearizability with
// porcupine, then durability, convergence and ownership checked after the
// faults heal and after every ring change (resharding under faults). docs/testing.md has the fault matrix and the results; make
// chaos runs it.
//
// The files, one idea each:
//
//   - model.go: the register-with-versions model of one key (pure);
//   - history.go: operations as recorded, and as porcupine sees them;
//   - check.go, converge.go: the checks;
//   - workload.go, prober.go: the clients, and the write prober that
//     measures unavailability;
//   - schedule.go: the fault kinds and the seeded schedule (pure);
//   - nemesis.go: injecting and healing each kind of fault;
//   - ring.go, ringchange.go: which group owned a key when (pure), and
//     ring changes as faults, with a fault struck mid-change;
//   - cluster.go, agentops.go, health.go, agentapi.go: the containerised
//     cluster, what can be done to an agent, and what it says;
//   - docker.go, firewall.go, probe.go, verify.go: Docker, the iptables
//     cuts, probes from inside containers' network namespaces, and the
//     proof that the cuts work;
//   - cleanup.go: removing everything a run created, also after a crash;
//   - run.go, report.go: one run from start to verdict.
//
// Everything that touches Docker needs root and runs only under
// CARPKV_CHAOS=1 (TestChaos, the TestChaos* regression scenarios).
package chaos
