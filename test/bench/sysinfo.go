package main

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// machine describes where the numbers came from; absolute times mean
// little without it, and nothing at all on another machine.
type machine struct {
	CPU        string  `json:"cpu"`
	Cores      int     `json:"cores"`
	MemGiB     float64 `json:"mem_gib"`
	Kernel     string  `json:"kernel"`
	OS         string  `json:"os"`
	Go         string  `json:"go"`
	Commit     string  `json:"commit"`
	LoadBefore string  `json:"loadavg_before"`
	LoadAfter  string  `json:"loadavg_after"`
}

func describeMachine() machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: loadavg()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		m.MemGiB = round2(float64(si.Totalram) * float64(si.Unit) / (1 << 30))
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// cpuNow is the CPU time of this process and of every child it has reaped
// (the plugins, and the IPAM plugins they ran).
func cpuNow() time.Duration {
	var self, kids unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &self)
	unix.Getrusage(unix.RUSAGE_CHILDREN, &kids)
	return rusageCPU(&self) + rusageCPU(&kids)
}

func rusageCPU(r *unix.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// procStat is the machine-wide CPU counters of /proc/stat, in ticks.
type procStat struct {
	busy, total uint64
	at          time.Time
}

func machineNow() procStat {
	st := procStat{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return st
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return st
	}
	for i, f := range fields[1:] {
		v, _ := strconv.ParseUint(f, 10, 64)
		st.total += v
		// idle (3) and iowait (4) are not busy
		if i != 3 && i != 4 {
			st.busy += v
		}
	}
	return st
}

// busyCores is how many cores the whole machine kept busy since before.
func (st procStat) busyCores(before procStat) float64 {
	dt := st.total - before.total
	if dt == 0 {
		return 0
	}
	return float64(st.busy-before.busy) / float64(dt) * float64(runtime.NumCPU())
}
