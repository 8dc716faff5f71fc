package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/carpkv/carpkv/kvclient/wire"
)

func (e *env) ringCommand() *cli.Command {
	return &cli.Command{
		Name:  "ring",
		Usage: "show the ring or the owner of a key; change the ring (add, remove or reweight a group) and follow the change",
		UsageText: `carpkvctl ring show | carpkvctl ring owner KEY
   carpkvctl ring add-group GROUP [--weight W] [--wait] | remove-group GROUP [--wait]
   carpkvctl ring set-weight GROUP WEIGHT [--wait] | status`,
		Subcommands: append([]*cli.Command{
			{
				Name:      "show",
				Usage:     "show the committed ring: epoch, mode, groups, weights, target shares, leaders, members",
				UsageText: "carpkvctl ring show",
				Description: `Prints the ring as an agent answers GET /v1/ring: its committed epoch and
CARP mode, and for each group its weight, the fraction of keys CARP gives it
(its target share), its leader and its members as gossip sees them (HTTP
address, gossip state, the ring epoch each acts under). Epoch 0 means no
ring is committed: the one group listed is standalone and serves every key.

Examples:
   carpkvctl ring show
   carpkvctl ring show -o json`,
				Action: e.ringShow,
			},
			{
				Name:      "owner",
				Usage:     "print the group that owns KEY under the ring, and its leader",
				UsageText: "carpkvctl ring owner KEY",
				Description: `Fetches the ring and prints which group owns KEY (CARP: the highest weighted
score wins) and that group's leader as far as gossip knows.

Examples:
   carpkvctl ring owner user/42
   carpkvctl ring owner user/42 -o json`,
				Action: e.ringOwner,
			},
		}, e.ringChangeCommands()...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return &usageError{msg: fmt.Sprintf("ring: unknown subcommand %q: want show, owner, add-group, remove-group, set-weight or status", c.Args().First()), cmd: "ring"}
			}
			return e.ringShow(c)
		},
	}
}

func (e *env) ringShow(c *cli.Context) error {
	if err := wantArgs(c, 0, 0, "no arguments"); err != nil {
		return err
	}
	s, err := e.connect(c)
	if err != nil {
		return err
	}
	defer s.close()
	r, err := s.kv.Ring(s.ctx)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, r)
	}
	return printRing(e.stdout, r)
}

func printRing(w io.Writer, r *wire.Ring) error {
	if r.Epoch == 0 {
		fmt.Fprintf(w, "ring: none committed; group %s is standalone and serves every key (answered by %s)\n\n", r.From, r.From)
	} else {
		fmt.Fprintf(w, "ring: epoch %d, mode %s, %d groups (answered by group %s)\n\n", r.Epoch, r.Mode, len(r.Groups), r.From)
	}
	var rows [][]string
	for _, g := range r.Groups {
		leader := "unknown"
		if g.Leader != nil {
			leader = g.Leader.ID
		}
		head := []string{g.ID, trimFloat(g.Weight), percent(g.Share), leader}
		if len(g.Members) == 0 {
			rows = append(rows, append(head, "(none known)", "", "", ""))
			continue
		}
		for i, m := range g.Members {
			row := head
			if i > 0 {
				row = []string{"", "", "", ""}
			}
			state := m.State
			if m.Leader && state == "alive" {
				state += ", leader"
			}
			rows = append(rows, append(row, m.ID, m.HTTPAddr, state, wire.FormatUint(m.RingEpoch)))
		}
	}
	return writeTableRaw(w, []string{"GROUP", "WEIGHT", "SHARE", "LEADER", "MEMBER", "HTTP ADDR", "GOSSIP", "EPOCH"}, rows)
}

// trimFloat prints a weight without trailing zeros.
func trimFloat(f float64) string { return strings.TrimSuffix(fmt.Sprintf("%g", f), ".0") }

// ownerResult is the JSON of `ring owner`.
type ownerResult struct {
	Key       string       `json:"key"`
	KeyBase64 bool         `json:"key_base64"`
	Group     string       `json:"group"`
	Leader    *wire.Leader `json:"leader,omitempty"`
	Epoch     uint64       `json:"epoch"`
}

func (e *env) ringOwner(c *cli.Context) error {
	if err := wantArgs(c, 1, 1, "KEY"); err != nil {
		return err
	}
	key := []byte(c.Args().First())
	if len(key) == 0 {
		return &usageError{msg: "owner: empty key", cmd: "owner"}
	}
	s, err := e.connect(c)
	if err != nil {
		return err
	}
	defer s.close()
	r, err := s.kv.Ring(s.ctx)
	if err != nil {
		return err
	}
	group, leader := s.kv.Owner(key)
	if e.json {
		res := ownerResult{Group: group, Leader: leader, Epoch: r.Epoch}
		res.Key, res.KeyBase64 = bytesField(key)
		return writeJSON(e.stdout, res)
	}
	lead := "leader unknown"
	if leader != nil {
		lead = "leader " + leader.ID
		if leader.HTTP != "" {
			lead += " at " + leader.HTTP
		}
	}
	_, err = fmt.Fprintf(e.stdout, "%s (%s; ring epoch %d)\n", group, lead, r.Epoch)
	return err
}
