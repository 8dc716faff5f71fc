package server

import (
	"context"
	"net/http"
	"sort"

	"github.com/gin-gonic/gin"

	"github.com/carpkv/carpkv/agent/store"
	"github.com/carpkv/carpkv/carp"
	"github.com/carpkv/carpkv/kvclient/wire"
)

// Cluster is the agent's view of the cluster beyond its group: the gossip
// pool (advisory) and ring changes (agent/cluster).
type Cluster interface {
	Members() []wire.Member
	StartChange(ctx context.Context, req wire.RingChangeRequest) (wire.RingChangeStatus, error)
	ChangeStatus(ctx context.Context) (wire.RingChangeAnswer, error)
	Export(ctx context.Context, req wire.MoveExportRequest) (wire.MoveExportResult, error)
}

func (s *Server) members(c *gin.Context) {
	c.JSON(http.StatusOK, wire.Members{Members: s.gossipMembers()})
}

func (s *Server) gossipMembers() []wire.Member {
	if s.cluster == nil {
		return []wire.Member{}
	}
	return s.cluster.Members()
}

// ring answers the committed ring, decorated with gossip's view of each
// group's members and leader.
func (s *Server) ring(c *gin.Context) {
	if err := s.node.RingReady(); err != nil {
		fail(c, err)
		return
	}
	spec := s.node.Store().Ring()
	self := s.node.Config()
	out := wire.Ring{Epoch: spec.Epoch, Mode: spec.Mode, From: self.Group}
	groups := spec.Groups
	var shares func(string) float64
	if spec.Epoch == 0 {
		// Standalone: this group serves every key.
		out.Mode = carp.ModeStrong.String()
		groups = []store.RingGroup{{ID: self.Group, Weight: self.GroupWeight}}
		shares = func(string) float64 { return 1 }
	} else {
		r, err := spec.Build()
		if err != nil {
			fail(c, err)
			return
		}
		shares = r.Share
	}
	byGroup := map[string][]wire.Member{}
	for _, m := range s.gossipMembers() {
		byGroup[m.Group] = append(byGroup[m.Group], m)
	}
	// This agent's own group: the registry is authoritative for addresses
	// even when gossip is slow to show a member.
	if cfg, err := s.node.Configuration(); err == nil {
		known := map[string]bool{}
		for _, m := range byGroup[self.Group] {
			known[m.ID] = true
		}
		for _, srv := range cfg.Servers {
			if !known[srv.ID] && srv.HTTPAddr != "" {
				byGroup[self.Group] = append(byGroup[self.Group], wire.Member{
					ID: srv.ID, Group: self.Group, HTTPAddr: srv.HTTPAddr, RaftAddr: srv.RaftAddr, State: "unknown", Leader: srv.Leader,
				})
			}
		}
	}
	for _, g := range groups {
		rg := wire.RingGroup{ID: g.ID, Weight: g.Weight, Share: shares(g.ID), Members: byGroup[g.ID]}
		if rg.Members == nil {
			rg.Members = []wire.Member{}
		}
		sort.Slice(rg.Members, func(i, j int) bool { return rg.Members[i].ID < rg.Members[j].ID })
		for _, m := range rg.Members {
			if m.Leader && m.State != "dead" && m.State != "left" {
				rg.Leader = &wire.Leader{ID: m.ID, HTTP: m.HTTPAddr}
			}
		}
		out.Groups = append(out.Groups, rg)
	}
	c.JSON(http.StatusOK, out)
}

// setRing commits a pushed ring in this group (leader only).
func (s *Server) setRing(ctx context.Context, req wire.RingSpec) (any, error) {
	epoch, err := s.node.SetRing(ctx, store.RingSpecFromWire(req))
	return gin.H{"epoch": epoch}, err
}
