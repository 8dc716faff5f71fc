package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/carpkv/carpkv/kvclient/wire"
)

func (e *env) membersCommand() *cli.Command {
	return &cli.Command{
		Name:      "members",
		Usage:     "list the group's Raft members",
		UsageText: "carpkvctl members",
		Description: `Lists the members of the group's Raft configuration, as the leader sees it
(or any member, if there is no leader): node ID, Raft address, HTTP
address, suffrage (Voter, Nonvoter, Staging) and which one leads.

Examples:
   carpkvctl members
   carpkvctl members -o json`,
		Action: e.members,
	}
}

func (e *env) members(c *cli.Context) error {
	if err := wantArgs(c, 0, 0, "no arguments"); err != nil {
		return err
	}
	s, err := e.connect(c)
	if err != nil {
		return err
	}
	defer s.close()
	conf, err := s.kv.Configuration(s.ctx)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, conf)
	}
	rows := make([][]string, 0, len(conf.Servers))
	for _, m := range conf.Servers {
		leader := ""
		if m.Leader {
			leader = "*"
		}
		rows = append(rows, []string{m.ID, m.RaftAddr, m.HTTPAddr, m.Suffrage, leader})
	}
	return writeTable(e.stdout, []string{"ID", "RAFT ADDR", "HTTP ADDR", "SUFFRAGE", "LEADER"}, rows)
}

func (e *env) joinCommand() *cli.Command {
	return &cli.Command{
		Name:      "join",
		Usage:     "add a node to the group",
		UsageText: "carpkvctl join --id ID --raft-addr HOST:PORT --http-addr HOST:PORT [--nonvoter]",
		Description: `Adds a running agent to the group as a voter (or, with --nonvoter, as a
non-voter that replicates but does not vote) and records its HTTP address.
The request goes to the leader. Joining again with the same ID and
addresses does nothing. A node that was removed cannot come back under the
same ID: start it with a fresh data dir and a new ID.

Examples:
   carpkvctl join --id n4 --raft-addr 10.0.0.4:7001 --http-addr 10.0.0.4:7101
   carpkvctl join --id r1 --raft-addr 10.0.1.1:7001 --http-addr 10.0.1.1:7101 --nonvoter`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "id", Usage: "the new node's `ID` (required)"},
			&cli.StringFlag{Name: "raft-addr", Usage: "the new node's Raft `HOST:PORT` (required)"},
			&cli.StringFlag{Name: "http-addr", Usage: "the new node's HTTP `HOST:PORT` (required)"},
			&cli.BoolFlag{Name: "nonvoter", Usage: "join as a non-voter"},
		},
		Action: e.join,
	}
}

func (e *env) join(c *cli.Context) error {
	if err := wantArgs(c, 0, 0, "flags only"); err != nil {
		return err
	}
	req := wire.JoinRequest{
		ID:       c.String("id"),
		RaftAddr: c.String("raft-addr"),
		HTTPAddr: c.String("http-addr"),
		Nonvoter: c.Bool("nonvoter"),
	}
	for _, f := range []struct{ flag, v string }{{"id", req.ID}, {"raft-addr", req.RaftAddr}, {"http-addr", req.HTTPAddr}} {
		if f.v == "" {
			return &usageError{msg: fmt.Sprintf("join: --%s is required", f.flag), cmd: "join"}
		}
	}
	s, err := e.connect(c)
	if err != nil {
		return err
	}
	defer s.close()
	idx, err := s.kv.Join(s.ctx, req)
	if err != nil {
		return err
	}
	suffrage := "voter"
	if req.Nonvoter {
		suffrage = "non-voter"
	}
	return e.printMembership(fmt.Sprintf("joined %s as a %s", req.ID, suffrage), req.ID, idx)
}

func (e *env) removeCommand() *cli.Command {
	return &cli.Command{
		Name:      "remove",
		Usage:     "remove a node from the group",
		UsageText: "carpkvctl remove ID",
		Description: `Removes node ID from the group's Raft configuration (the request goes to
the leader). Exit 2 if ID is not a member. The removed node cannot rejoin
under the same ID.

Example:
   carpkvctl remove n4`,
		Action: e.remove,
	}
}

func (e *env) remove(c *cli.Context) error {
	if err := wantArgs(c, 1, 1, "ID"); err != nil {
		return err
	}
	id := c.Args().First()
	s, err := e.connect(c)
	if err != nil {
		return err
	}
	defer s.close()
	idx, err := s.kv.Remove(s.ctx, id)
	if err != nil {
		return err
	}
	return e.printMembership("removed "+id, id, idx)
}

func (e *env) transferCommand() *cli.Command {
	return &cli.Command{
		Name:      "transfer-leader",
		Usage:     "hand the group's leadership to another member",
		UsageText: "carpkvctl transfer-leader [ID]",
		Description: `Asks the leader to hand leadership to node ID, or to any up-to-date
follower if ID is omitted (before maintenance of the leader's host).

Examples:
   carpkvctl transfer-leader
   carpkvctl transfer-leader n2`,
		Action: e.transfer,
	}
}

func (e *env) transfer(c *cli.Context) error {
	if err := wantArgs(c, 0, 1, "[ID]"); err != nil {
		return err
	}
	id := c.Args().First()
	s, err := e.connect(c)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.kv.TransferLeadership(s.ctx, id); err != nil {
		return err
	}
	msg := "leadership transferred"
	if id != "" {
		msg += " to " + id
	}
	return e.printMembership(msg, id, 0)
}

// printMembership reports a membership change: a sentence, or JSON.
func (e *env) printMembership(msg, id string, index uint64) error {
	if e.json {
		return writeJSON(e.stdout, struct {
			ID    string `json:"id,omitempty"`
			Index uint64 `json:"index,omitempty"`
		}{id, index})
	}
	if index != 0 {
		msg += fmt.Sprintf(" (configuration index %d)", index)
	}
	_, err := fmt.Fprintln(e.stdout, msg)
	return err
}
