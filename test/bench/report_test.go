package main

import (
	"slices"
	"strings"
	"testing"
)

// sampleResults is a small run with one of everything tables() renders.
func sampleResults() *results {
	d := func(p50 float64) dist { return dist{N: 10, P50: p50, P95: p50, P99: p50, Max: p50} }
	ops := func(a, c, del float64) opDists { return opDists{ADD: d(a), CHECK: d(c), DEL: d(del)} }
	r := &results{
		Settings: settings{Iterations: 10, Concurrency: []int{1, 8}, TputPods: 16, TputPerWorker: 2},
		Chains: []chainResult{
			{Key: vFloorMacvlan, Title: "floor: macvlan", Latency: ops(10, 8, 35), VsFloor: opRatios{1, 1, 1}, VsTuning: &opRatios{0.45, 0.64, 0.9}},
			{Key: vMGPass, Title: "ptp + macguard", Latency: ops(15, 12, 35), VsFloor: opRatios{1.41, 1.51, 0.99}},
		},
		Throughput: []throughputPoint{
			{Variant: vMGEnforce, Concurrency: 1, Pods: 16, PodsPerSec: 12, Speedup: 1, SpeedupBase: 1},
			{Variant: vMGEnforce, Concurrency: 8, Pods: 16, PodsPerSec: 34, Speedup: 2.83, SpeedupBase: 1},
		},
	}
	r.Targets = evaluate(r)
	return r
}

func TestTablesRowsMatchHeaders(t *testing.T) {
	for _, tb := range tables(sampleResults()) {
		for i, row := range tb.rows {
			if len(row) != len(tb.header) {
				t.Errorf("%q row %d has %d cells for %d columns", tb.title, i, len(row), len(tb.header))
			}
		}
	}
}

func TestLatencyTableRatios(t *testing.T) {
	lat := tables(sampleResults())[0]
	col := map[string]int{}
	for i, h := range lat.header {
		col[h] = i
	}
	pass := lat.rows[1]
	for h, want := range map[string]string{
		"ADD vs floor": "1.41x", "CHECK vs floor": "1.51x", "DEL vs floor": "0.99x",
		"ADD vs tuning chain": "-", "CHECK vs tuning chain": "-", "DEL vs tuning chain": "-",
	} {
		if got := pass[col[h]]; got != want {
			t.Errorf("ptp + macguard %q = %q, want %q", h, got, want)
		}
	}
	if got := lat.rows[0][col["CHECK vs tuning chain"]]; got != "0.64x" {
		t.Errorf("floor: macvlan CHECK vs tuning chain = %q, want 0.64x", got)
	}
}

func TestTputPlanPods(t *testing.T) {
	p := tputPlan{minPods: 48, perWorker: 2}
	for c, want := range map[int]int{1: 48, 8: 48, 24: 48, 32: 64, 128: 256} {
		if got := p.pods(c); got != want {
			t.Errorf("pods(%d) = %d, want %d", c, got, want)
		}
		if p.pods(c) < c {
			t.Errorf("pods(%d) = %d leaves workers idle", c, p.pods(c))
		}
	}
}

func TestIntListAscending(t *testing.T) {
	got, err := intList("32, 1,8,32")
	if err != nil || !slices.Equal(got, []int{1, 8, 32}) {
		t.Fatalf("intList = %v, %v; want [1 8 32]", got, err)
	}
	if _, err := intList("1,0"); err == nil {
		t.Error("intList accepted 0")
	}
}

// A sweep that does not start at 1 must say what its speedups are over.
func TestThroughputBaseNamed(t *testing.T) {
	r := &results{Settings: settings{Concurrency: []int{4, 16}, TputPods: 16, TputPerWorker: 2}, Machine: machine{Cores: 2}}
	for _, v := range []string{vFloorMacvlan, vTuning, vMGEnforce} {
		r.Throughput = append(r.Throughput,
			throughputPoint{Variant: v, Concurrency: 4, Pods: 16, PodsPerSec: 20, Speedup: 1, SpeedupBase: 4},
			throughputPoint{Variant: v, Concurrency: 16, Pods: 32, PodsPerSec: 30, Speedup: 1.5, SpeedupBase: 4})
	}
	tg, ok := throughputTarget(r)
	if !ok {
		t.Fatal("no throughput target")
	}
	if !strings.Contains(tg.Want, "over x4") || !strings.Contains(tg.Figure, "over x4") {
		t.Errorf("target does not name its base: want %q, figure %q", tg.Want, tg.Figure)
	}
	if !strings.Contains(tg.Figure, "x16 (32 pods)") {
		t.Errorf("figure does not give the pods of a level: %q", tg.Figure)
	}
	for _, tb := range tables(r) {
		if strings.HasPrefix(tb.title, "ADD+DEL throughput") {
			if !slices.Contains(tb.header, "speedup vs x4") || !slices.Contains(tb.header, "pods") {
				t.Errorf("throughput header %v", tb.header)
			}
			if !strings.Contains(tb.title, "max(16, 2 x concurrent)") {
				t.Errorf("throughput title %q", tb.title)
			}
		}
	}
}

// TestRetiredTargets: the plugin-process targets whose figures are the
// kernel's (here the pass-through and the throughput, both missed by the
// sample's figures) say so instead of MISSED.
func TestRetiredTargets(t *testing.T) {
	ts := tables(sampleResults())
	rows := ts[len(ts)-1].rows
	if len(rows) != 2 {
		t.Fatalf("%d targets in the sample, want 2: %v", len(rows), rows)
	}
	for _, row := range rows {
		if !strings.HasPrefix(row[2], "retired: ") {
			t.Errorf("target %q: %q, want retired", row[0], row[2])
		}
	}
}

func TestQuickRunMarked(t *testing.T) {
	r := sampleResults()
	r.Settings.Quick, r.Notice = true, smokeNotice
	r.Targets = evaluate(r)
	if len(r.Targets) == 0 {
		t.Fatal("no targets to judge in the sample")
	}
	if h := header(r); !strings.HasPrefix(h, smokeNotice+"\n") {
		t.Errorf("a quick run's header does not open with the notice:\n%s", h)
	}
	ts := tables(r)
	tg := ts[len(ts)-1]
	for _, row := range tg.rows {
		if row[2] != "not judged (quick run)" {
			t.Errorf("quick run target %q judged %q", row[0], row[2])
		}
	}
	for _, x := range r.Targets {
		if x.Judged || x.Met {
			t.Errorf("quick run target %q: judged %t met %t", x.Name, x.Judged, x.Met)
		}
	}

	r = sampleResults()
	if h := header(r); strings.Contains(h, "SMOKE") {
		t.Errorf("a real run's header carries the notice:\n%s", h)
	}
	for _, x := range r.Targets {
		if !x.Judged {
			t.Errorf("real run target %q not judged", x.Name)
		}
	}
}

// TestThroughputJudgement: growth has to be real growth or a busy machine;
// a plateau with idle cores, the sign of a lock, is missed even when its
// top level is a hair above the others.
func TestThroughputJudgement(t *testing.T) {
	point := func(c int, pps, busy float64) throughputPoint {
		return throughputPoint{Variant: vMGEnforce, Concurrency: c, Pods: 48, PodsPerSec: pps, Speedup: pps / 16, SpeedupBase: 1, MachineBusy: busy}
	}
	tests := []struct {
		name   string
		points []throughputPoint
		met    bool
	}{
		{"still growing at the top", []throughputPoint{point(1, 16, 0.5), point(8, 30, 0.9), point(32, 40, 1.2)}, true},
		{"plateau, cores idle", []throughputPoint{point(1, 16.8, 0.5), point(8, 36.5, 0.9), point(32, 37.7, 1.1), point(128, 38.1, 1.2)}, false},
		{"plateau, cores busy", []throughputPoint{point(1, 16, 0.6), point(8, 40, 1.7), point(32, 41, 1.9)}, true},
		{"no growth", []throughputPoint{point(1, 16, 0.5), point(8, 18, 1.7), point(32, 18, 1.9)}, false},
		{"collapse after the best", []throughputPoint{point(1, 16, 0.6), point(8, 40, 1.7), point(32, 30, 1.9)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &results{Machine: machine{Cores: 2}, Throughput: tt.points}
			for _, p := range tt.points {
				r.Settings.Concurrency = append(r.Settings.Concurrency, p.Concurrency)
			}
			tg, ok := throughputTarget(r)
			if !ok || tg.Met != tt.met {
				t.Fatalf("met = %v (ok %v), want %v: %s", tg.Met, ok, tt.met, tg.Figure)
			}
		})
	}
}

// TestChainOverheadTarget: the whole chain's cost over the floor is judged
// against the tuning chain's, both from the same run's p50s.
func TestChainOverheadTarget(t *testing.T) {
	d := func(p50 float64) dist { return dist{N: 10, P50: p50, P95: p50, P99: p50, Max: p50} }
	chains := func(floor, tuning, mg float64) []chainResult {
		return []chainResult{
			{Key: vFloorMacvlan, Latency: opDists{ADD: d(floor)}},
			{Key: vTuning, Latency: opDists{ADD: d(tuning)}},
			{Key: vMGEnforce, Latency: opDists{ADD: d(mg)}},
		}
	}
	tests := []struct {
		name              string
		floor, tuning, mg float64
		wantValue         float64
		wantMet           bool
	}{
		{"a lead", 8, 18, 16, 0.8, true},
		{"parity", 8, 18, 18, 1, false},
		{"at the bound", 8, 28, 25, 0.85, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &results{Chains: chains(tt.floor, tt.tuning, tt.mg)}
			var got *target
			for _, x := range evaluate(r) {
				if strings.HasPrefix(x.Name, "the macguard chain's ADD overhead") {
					got = &x
				}
			}
			if got == nil {
				t.Fatal("no chain-overhead target judged")
			}
			if got.Value != tt.wantValue || got.Met != tt.wantMet || got.Want != "<= 0.85x" {
				t.Errorf("value %v met %t want %q; want %v %t", got.Value, got.Met, got.Want, tt.wantValue, tt.wantMet)
			}
		})
	}
}
