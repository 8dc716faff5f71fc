package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// cpuTime is the user plus system CPU time of processes pids so far (all
// their threads).
func cpuTime(pids []int) (time.Duration, error) {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("server process %d: %w", pid, err)
		}
		// pid (comm) state ppid ...: fields after the last ')' start at
		// field 3; utime and stime are fields 14 and 15.
		i := bytes.LastIndexByte(b, ')')
		f := bytes.Fields(b[i+1:])
		if len(f) < 13 {
			return 0, fmt.Errorf("server process %d: short stat", pid)
		}
		u, err1 := strconv.ParseInt(string(f[11]), 10, 64)
		s, err2 := strconv.ParseInt(string(f[12]), 10, 64)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("server process %d: bad stat", pid)
		}
		ticks += u + s
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// diskWritten is what processes pids have sent to storage so far
// (write_bytes of /proc/PID/io: page-cache writeback included, reads and
// cancelled writes not).
func diskWritten(pids []int) (int64, error) {
	var total int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
		if err != nil {
			return 0, fmt.Errorf("server process %d: %w", pid, err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("server process %d: bad io", pid)
				}
				total += n
			}
		}
	}
	return total, nil
}
