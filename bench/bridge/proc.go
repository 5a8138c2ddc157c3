package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it is 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// cpuTime is the CPU time (user + system) process pid has used so far, from
// /proc/PID/stat ("self" for this process); 0 when it cannot be read.
func cpuTime(pid string) time.Duration {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces: fields count
	// from the last ')'. utime and stime are fields 14 and 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(u+st) * time.Second / clockTicks
}

// listenerPID finds the process listening on TCP port (IPv4 or IPv6): the socket's
// inode from /proc/net/tcp{,6}, then the process holding it among /proc/*/fd. It
// returns "" when none is found (another user's process, or no permission).
func listenerPID(port int) string {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
			if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			if j := strings.LastIndexByte(fields[1], ':'); j >= 0 {
				if p, err := strconv.ParseInt(fields[1][j+1:], 16, 32); err == nil && int(p) == port {
					inodes["socket:["+fields[9]+"]"] = true
				}
			}
		}
		fh.Close()
	}
	if len(inodes) == 0 {
		return ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		fds, _ := os.ReadDir(filepath.Join(p, "fd"))
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join(p, "fd", fd.Name())); err == nil && inodes[l] {
				return filepath.Base(p)
			}
		}
	}
	return ""
}

// component is a process whose CPU time a run accounts for.
type component struct {
	name string
	pid  string // "" when not found: its figures print as n/a
}

// cpuSample is the CPU time of each component at one moment.
type cpuSample []time.Duration

func sample(cs []component) cpuSample {
	out := make(cpuSample, len(cs))
	for i, c := range cs {
		if c.pid != "" {
			out[i] = cpuTime(c.pid)
		}
	}
	return out
}

// perThousand formats the CPU seconds per 1,000 examples each component spent between
// two samples.
func perThousand(cs []component, before, after cpuSample, n int) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		if c.pid == "" || n == 0 {
			out[i] = "n/a"
			continue
		}
		out[i] = fmt.Sprintf("%.2f", (after[i]-before[i]).Seconds()*1000/float64(n))
	}
	return out
}
