package main

import (
	"math"
	"testing"
)

// Two reads of /proc/stat from a 2-core VM, one second (100 ticks per
// core) apart, with guest time and steal in the interval.
const (
	procStatBefore = `cpu  1000 200 300 5000 100 10 20 50 400 40
cpu0 500 100 150 2500 50 5 10 25 200 20
cpu1 500 100 150 2500 50 5 10 25 200 20
intr 12345
`
	// Interval: user +60 (of which guest +30), nice +10 (guest_nice +10),
	// system +20, idle +80, iowait +5, irq +2, softirq +3, steal +20.
	procStatAfter = `cpu  1060 210 320 5080 105 12 23 70 430 50
cpu0 530 105 160 2540 52 6 11 35 215 25
cpu1 530 105 160 2540 53 6 12 35 215 25
intr 23456
`
)

func TestParseProcStat(t *testing.T) {
	st := parseProcStat(procStatBefore)
	// busy: user+nice+system+irq+softirq; total: busy+idle+iowait+steal.
	if want := uint64(1000 + 200 + 300 + 10 + 20); st.busy != want {
		t.Errorf("busy = %d, want %d (guest fields must not be added again)", st.busy, want)
	}
	if want := uint64(1530 + 5000 + 100 + 50); st.total != want {
		t.Errorf("total = %d, want %d", st.total, want)
	}
}

func TestBusyCores(t *testing.T) {
	before, after := parseProcStat(procStatBefore), parseProcStat(procStatAfter)
	// 95 busy ticks of 200 on 2 cores: 0.95 cores. Counting guest again and
	// steal as busy, as before, would have said 155/240*2 = 1.29.
	got := after.busyOf(before, 2)
	if want := 0.95; math.Abs(got-want) > 1e-9 {
		t.Errorf("busyOf = %v cores, want %v", got, want)
	}
	if got := before.busyOf(after, 2); got != 0 {
		t.Errorf("busyOf with the reads swapped = %v, want 0", got)
	}
	if got := before.busyOf(before, 2); got != 0 {
		t.Errorf("busyOf over no time = %v, want 0", got)
	}
}

func TestParseProcStatShortOrForeign(t *testing.T) {
	// A kernel without steal/guest columns.
	if st := parseProcStat("cpu 10 0 5 100 1 0 0\n"); st.busy != 15 || st.total != 116 {
		t.Errorf("short line: busy %d total %d, want 15 116", st.busy, st.total)
	}
	if st := parseProcStat("intr 1 2 3 4 5\n"); st.busy != 0 || st.total != 0 {
		t.Errorf("no cpu line: busy %d total %d, want 0 0", st.busy, st.total)
	}
}
