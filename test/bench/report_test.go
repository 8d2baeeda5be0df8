package main

import (
	"testing"
)

// sampleResults is a small run with one of everything tables() renders.
func sampleResults() *results {
	d := func(p50 float64) dist { return dist{N: 10, P50: p50, P95: p50, P99: p50, Max: p50} }
	ops := func(a, c, del float64) opDists { return opDists{ADD: d(a), CHECK: d(c), DEL: d(del)} }
	r := &results{
		Settings: settings{Iterations: 10, Concurrency: []int{1, 8}, TputPods: 16},
		Chains: []chainResult{
			{Key: vFloorMacvlan, Title: "floor: macvlan", Latency: ops(10, 8, 35), VsFloor: opRatios{1, 1, 1}, VsTuning: &opRatios{0.45, 0.64, 0.9}},
			{Key: vMGPass, Title: "ptp + macguard", Latency: ops(15, 12, 35), VsFloor: opRatios{1.41, 1.51, 0.99}},
		},
		Throughput: []throughputPoint{
			{Variant: vMGEnforce, Concurrency: 1, Pods: 16, PodsPerSec: 12, Speedup: 1},
			{Variant: vMGEnforce, Concurrency: 8, Pods: 16, PodsPerSec: 34, Speedup: 2.83},
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
