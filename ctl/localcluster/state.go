// Package localcluster runs a carpkv cluster of many groups as local
// processes on loopback, for `carpkvctl local` and `make run`: it picks
// free ports, starts carpkv-agent processes in their own sessions (so they
// outlive the command that started them), records them in a state file,
// and stops, kills and restarts them. It knows nothing of the HTTP API:
// waiting for the cluster to serve is the caller's business.
//
// A cluster lives in one directory:
//
//	<dir>/cluster.json   the state file (State)
//	<dir>/data/<node>/   each agent's --data-dir
//	<dir>/logs/<node>.log each agent's stdout and stderr
package localcluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// StateFile is the name of the state file inside a cluster's directory.
const StateFile = "cluster.json"

// stateVersion is written in every state file; Load refuses others.
const stateVersion = 1

// State is a local cluster as recorded in its state file.
type State struct {
	Version  int       `json:"version"`
	Dir      string    `json:"dir"`
	AgentBin string    `json:"agent_bin"`
	Groups   int       `json:"groups"`
	Replicas int       `json:"replicas"`
	Created  time.Time `json:"created"`
	Nodes    []Node    `json:"nodes"`
}

// Node is one agent of a local cluster.
type Node struct {
	ID         string   `json:"id"`
	Group      string   `json:"group"`
	PID        int      `json:"pid"` // 0: not started, or stopped by carpkvctl
	RaftAddr   string   `json:"raft_addr"`
	HTTPAddr   string   `json:"http_addr"`
	GossipAddr string   `json:"gossip_addr"`
	DataDir    string   `json:"data_dir"`
	Log        string   `json:"log"`
	Args       []string `json:"args"` // the agent's arguments, binary excluded
	// Removed: its group was removed from the ring and the agent stopped
	// ("local remove-group"); it is not started, waited for or counted
	// again. Its data and log stay until "local down --purge".
	Removed bool `json:"removed,omitempty"`
}

// ErrNoCluster is returned by Load when the directory holds no state file.
var ErrNoCluster = errors.New("no local cluster")

// DefaultDir is $CARPKV_LOCAL_DIR, else <user cache dir>/carpkv/local.
func DefaultDir() (string, error) {
	if d := os.Getenv("CARPKV_LOCAL_DIR"); d != "" {
		return filepath.Abs(d)
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no directory for the local cluster (set CARPKV_LOCAL_DIR): %w", err)
	}
	return filepath.Join(c, "carpkv", "local"), nil
}

// Load reads the state file of the cluster in dir. It wraps ErrNoCluster
// if there is none.
func Load(dir string) (*State, error) {
	path := filepath.Join(dir, StateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoCluster, dir)
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("%s: state file version %d, this carpkvctl reads %d (remove the directory or pass --fresh)", path, s.Version, stateVersion)
	}
	s.Dir = dir
	return &s, nil
}

// Save writes the state file atomically (a crash leaves the old or the
// new file, never half of one).
func (s *State) Save() error {
	s.Version = stateVersion
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.Dir, StateFile+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(s.Dir, StateFile))
}

// Node returns the node with id, or nil.
func (s *State) Node(id string) *Node {
	for i := range s.Nodes {
		if s.Nodes[i].ID == id {
			return &s.Nodes[i]
		}
	}
	return nil
}

// HTTPAddrs returns every node's HTTP address, running nodes first;
// removed nodes are left out.
func (s *State) HTTPAddrs() []string {
	var up, down []string
	for _, n := range s.Nodes {
		if n.Removed {
			continue
		}
		if n.Alive() {
			up = append(up, n.HTTPAddr)
		} else {
			down = append(down, n.HTTPAddr)
		}
	}
	return append(up, down...)
}

// Alive returns the nodes whose process runs.
func (s *State) Alive() []*Node {
	var out []*Node
	for i := range s.Nodes {
		if s.Nodes[i].Alive() {
			out = append(out, &s.Nodes[i])
		}
	}
	return out
}

// Active returns the nodes that are not removed, running or not.
func (s *State) Active() []*Node {
	var out []*Node
	for i := range s.Nodes {
		if !s.Nodes[i].Removed {
			out = append(out, &s.Nodes[i])
		}
	}
	return out
}

// GroupNodes returns the nodes of group that are not removed.
func (s *State) GroupNodes(group string) []*Node {
	var out []*Node
	for _, n := range s.Active() {
		if n.Group == group {
			out = append(out, n)
		}
	}
	return out
}

// ActiveGroups lists the groups that have nodes not removed, in the order
// of the nodes.
func (s *State) ActiveGroups() []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range s.Active() {
		if !seen[n.Group] {
			seen[n.Group] = true
			out = append(out, n.Group)
		}
	}
	return out
}

// NodeIDs lists the node IDs, for messages.
func (s *State) NodeIDs() []string {
	out := make([]string, len(s.Nodes))
	for i, n := range s.Nodes {
		out[i] = n.ID
	}
	return out
}
