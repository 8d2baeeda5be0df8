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
		_ = f.Close() // only read
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
	// getrusage fails only for an invalid "who"; these two are valid.
	_ = unix.Getrusage(unix.RUSAGE_SELF, &self)
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &kids)
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
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return procStat{at: time.Now()}
	}
	st := parseProcStat(string(b))
	st.at = time.Now()
	return st
}

// parseProcStat reads the aggregate "cpu" line of /proc/stat: user nice
// system idle iowait irq softirq steal guest guest_nice (proc(5)).
//
//   - busy is what this machine's kernel ran: user, nice, system, irq,
//     softirq;
//   - total adds idle, iowait and steal: steal is time the hypervisor gave
//     to someone else, so it is neither work done here nor idle capacity,
//     but it is time that passed, and leaving it out would make a starved
//     VM look busier than it was;
//   - guest and guest_nice are left out of both: the kernel already counts
//     them inside user and nice (account_guest_time), so adding them again
//     counts the same ticks twice.
//
// Older kernels print fewer fields; missing ones count as zero.
func parseProcStat(s string) procStat {
	var st procStat
	line, _, _ := strings.Cut(s, "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return st
	}
	for i, f := range fields[1:] {
		v, _ := strconv.ParseUint(f, 10, 64)
		switch i {
		case 0, 1, 2, 5, 6: // user nice system irq softirq
			st.busy += v
			st.total += v
		case 3, 4, 7: // idle iowait steal
			st.total += v
		}
	}
	return st
}

// busyCores is how many cores the whole machine kept busy since before.
func (st procStat) busyCores(before procStat) float64 {
	return st.busyOf(before, runtime.NumCPU())
}

func (st procStat) busyOf(before procStat, cores int) float64 {
	if st.total <= before.total || st.busy < before.busy {
		return 0
	}
	return float64(st.busy-before.busy) / float64(st.total-before.total) * float64(cores)
}
