package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Floor is what the hardware allows at best: how long one durable write
// to the data disk takes, and one round trip between two processes over
// loopback. A replicated write needs at least one of each per copy on its
// critical path.
type Floor struct {
	FsyncP50   time.Duration `json:"fsync_p50_ns"`
	FsyncP99   time.Duration `json:"fsync_p99_ns"`
	FsyncPerS  float64       `json:"fsyncs_per_sec"`
	RTTP50     time.Duration `json:"loopback_rtt_p50_ns"`
	RTTP99     time.Duration `json:"loopback_rtt_p99_ns"`
	FsyncCount int           `json:"fsync_samples"`
	RTTCount   int           `json:"rtt_samples"`
}

func measureFloor(dir, self string) (Floor, error) {
	var f Floor
	fs, err := fsyncLatency(dir, 2000)
	if err != nil {
		return f, err
	}
	f.FsyncP50, f.FsyncP99, f.FsyncCount = quantile(fs, 0.5), quantile(fs, 0.99), len(fs)
	var total time.Duration
	for _, d := range fs {
		total += d
	}
	f.FsyncPerS = float64(len(fs)) / total.Seconds()
	rtt, err := loopbackRTT(self, 20000)
	if err != nil {
		return f, err
	}
	f.RTTP50, f.RTTP99, f.RTTCount = quantile(rtt, 0.5), quantile(rtt, 0.99), len(rtt)
	return f, nil
}

// fsyncLatency appends 256 bytes and fsyncs, n times, in dir (the disk the
// clusters' data lives on), as a Raft log append does.
func fsyncLatency(dir string, n int) ([]time.Duration, error) {
	f, err := os.Create(filepath.Join(dir, "fsync-probe"))
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 256)
	out := make([]time.Duration, 0, n)
	for i := range n + 100 {
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
		if i >= 100 { // the first ones allocate the file's blocks
			out = append(out, time.Since(start))
		}
	}
	return out, nil
}

// loopbackRTT starts this program's echo server as a separate process and
// times n 64-byte round trips over one TCP connection.
func loopbackRTT(self string, n int) ([]time.Duration, error) {
	cmd := exec.Command(self, "echo")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("echo server: %w", err)
	}
	conn, err := net.Dial("tcp", strings.TrimSpace(addr))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	buf := make([]byte, 64)
	out := make([]time.Duration, 0, n)
	for i := range n + 1000 {
		start := time.Now()
		if _, err := conn.Write(buf); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(conn, buf); err != nil {
			return nil, err
		}
		if i >= 1000 {
			out = append(out, time.Since(start))
		}
	}
	return out, nil
}

// echoCmd serves one connection at a time, echoing 64-byte messages.
func echoCmd() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		buf := make([]byte, 64)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				break
			}
			if _, err := c.Write(buf); err != nil {
				break
			}
		}
		c.Close()
	}
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := int(q * float64(len(s)-1))
	return s[i]
}
