package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/carpkv/carpkv/kvclient/wire"
)

// TestMain points CARPKV_LOCAL_DIR at an empty directory, so that no test
// picks up a local cluster the developer happens to run. With
// CARPKV_FAKE_AGENT set, the test binary is not a test but a stand-in for
// carpkv-agent (fakeAgentMain), so `local` can start real processes.
func TestMain(m *testing.M) {
	if mode := os.Getenv("CARPKV_FAKE_AGENT"); mode != "" {
		os.Exit(fakeAgentMain(mode, os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "carpkvctl-test-local-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("CARPKV_LOCAL_DIR", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fakeAgentMain takes the agent flags `local up` passes and answers the
// few management calls `local` waits on, as an agent of a cluster whose
// ring is committed at epoch 1: /v1/health, /v1/ready, /v1/agent/self
// (node gX-n1 leads group gX) and /v1/ring (this agent only, as members).
// It exits on SIGTERM, unless mode is "stubborn".
func fakeAgentMain(mode string, args []string) int {
	// Signals first: once it answers HTTP, `local` may signal it.
	sig := make(chan os.Signal, 1)
	if mode == "stubborn" {
		signal.Ignore(syscall.SIGTERM)
		signal.Notify(sig, syscall.SIGUSR1) // never sent: wait for SIGKILL
	} else {
		signal.Notify(sig, syscall.SIGTERM)
	}
	flags := map[string]string{}
	for i := 0; i+1 < len(args); i++ {
		if strings.HasPrefix(args[i], "--") {
			flags[strings.TrimPrefix(args[i], "--")] = args[i+1]
		}
	}
	l, err := net.Listen("tcp", flags["http-addr"])
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake agent:", err)
		return 1
	}
	fmt.Printf("fake agent %s of %s listening on %s\n", flags["node-id"], flags["group"], l.Addr())
	id, group := flags["node-id"], flags["group"]
	groups, _ := strconv.Atoi(flags["expect-groups"])
	state := "Follower"
	if strings.HasSuffix(id, "-n1") {
		state = "Leader"
	}
	self := wire.AgentInfo{ID: id, Group: group, HTTPAddr: flags["http-addr"], RaftAddr: flags["raft-addr"], State: state, Term: 1, RingEpoch: 1, Version: "fake"}
	ring := wire.Ring{Epoch: 1, Mode: "strong", From: group}
	for g := 1; g <= groups; g++ {
		rg := wire.RingGroup{ID: fmt.Sprintf("g%d", g), Weight: 1, Share: 1 / float64(groups), Members: []wire.Member{}}
		if rg.ID == group {
			rg.Members = append(rg.Members, wire.Member{ID: id, Group: group, HTTPAddr: flags["http-addr"], State: "alive", Leader: state == "Leader", RingEpoch: 1})
		}
		ring.Groups = append(ring.Groups, rg)
	}
	answer := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(wire.PathHealth, func(w http.ResponseWriter, r *http.Request) { answer(w, map[string]string{"status": "ok"}) })
	mux.HandleFunc(wire.PathReady, func(w http.ResponseWriter, r *http.Request) { answer(w, map[string]string{"status": "ready"}) })
	mux.HandleFunc(wire.PathAgentSelf, func(w http.ResponseWriter, r *http.Request) { answer(w, self) })
	mux.HandleFunc(wire.PathRing, func(w http.ResponseWriter, r *http.Request) { answer(w, ring) })
	// The coordinator (g1's leader) records a ring change and reports it
	// done at once: enough for `local add-group` and `remove-group`.
	var (
		mu     sync.Mutex
		change *wire.RingChangeStatus
	)
	mux.HandleFunc(wire.PathRingChange, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodGet {
			answer(w, wire.RingChangeAnswer{Last: change})
			return
		}
		var req wire.RingChangeRequest
		if id != "g1-n1" || json.NewDecoder(r.Body).Decode(&req) != nil {
			w.WriteHeader(http.StatusBadRequest)
			answer(w, wire.ErrorBody{Error: &wire.Error{Code: wire.CodeInvalidArgument, Message: "fake agent: not the coordinator, or a bad body"}})
			return
		}
		st := wire.RingChangeStatus{Kind: req.Kind, Group: req.Group, Phase: wire.PhasePrepare, Coordinator: "g1",
			From: wire.RingSpec{Epoch: 1}, To: wire.RingSpec{Epoch: 2}, StartedAt: 1}
		answer(w, st)
		st.Phase, st.FinishedAt = wire.PhaseDone, 2
		change = &st
		fmt.Printf("fake agent: ring change %s %s weight %v\n", req.Kind, req.Group, req.Weight)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(wire.ErrorBody{Error: &wire.Error{Code: wire.CodeNotFound, Message: "fake agent: no " + r.URL.Path}})
	})
	go func() { _ = http.Serve(l, mux) }()

	<-sig
	return 0
}
