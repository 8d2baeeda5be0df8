package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/containernetworking/cni/libcni"
)

// fillPoint is macguard's ADD and DEL (the plugin process alone, wall
// time) on a node whose data dir already holds Records other pods' records
// of the same network: what a node filling up costs each pod (issue 22,
// item 4).
type fillPoint struct {
	Records int  `json:"records"`
	ADD     dist `json:"add"`
	DEL     dist `json:"del"`
	// Growth is the p50 over the emptiest point's.
	ADDGrowth float64 `json:"add_growth"`
	DELGrowth float64 `json:"del_growth"`
}

// gcMemPoint is the peak RSS of macguard's GC removing Records stale
// records (under rssprobe).
type gcMemPoint struct {
	Records int     `json:"records"`
	RSS     rssDist `json:"rss"`
}

// runFill measures ADD and DEL of macvlan + macguard enforcing a requested
// MAC with each number of records in the data dir, the sizes interleaved
// iteration by iteration. The records are written with package state
// (fillState) and are not timed.
func runFill(ctx context.Context, r *runner, sizes []int, iters int, progress func(string)) ([]fillPoint, error) {
	vs := make([]*variant, len(sizes))
	for i, n := range sizes {
		key := fmt.Sprintf("fill-%d", n)
		dir := r.env.path("fill", strconv.Itoa(n))
		name := netName(key)
		list, err := chain(r.env, name, "macvlan", 120+i, map[string]any{"type": "macguard", "dataDir": dir, "capabilities": map[string]bool{"mac": true}})
		if err != nil {
			return nil, err
		}
		if err := fillState(dir, name, n); err != nil {
			return nil, err
		}
		vs[i] = &variant{Key: key, Main: "macvlan", Meta: "macguard", RequestMAC: true, Expect: expectRequested, list: list}
	}
	adds, dels := make([][]time.Duration, len(sizes)), make([][]time.Duration, len(sizes))
	for it := 0; it < iters; it++ {
		for k := range vs {
			i := (it + k) % len(vs)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			id := fmt.Sprintf("fill-%d-%d", sizes[i], it)
			add, _, del, err := r.lifecycle(ctx, vs[i], pod{ID: id, Name: id, MAC: requestedMAC(0x50+i, it)})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", vs[i].Key, err)
			}
			a, ok1 := add.meta("macguard")
			d, ok2 := del.meta("macguard")
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%s: libcni did not run macguard for ADD and DEL", vs[i].Key)
			}
			adds[i], dels[i] = append(adds[i], a.Wall), append(dels[i], d.Wall)
		}
	}
	progress(fmt.Sprintf("node fill-up: %d lifecycles x %d sizes done", iters, len(sizes)))
	out := make([]fillPoint, len(sizes))
	for i, n := range sizes {
		out[i] = fillPoint{Records: n, ADD: summarize(adds[i]), DEL: summarize(dels[i])}
		out[i].ADDGrowth, out[i].DELGrowth = ratio(out[i].ADD.P50, out[0].ADD.P50), ratio(out[i].DEL.P50, out[0].DEL.P50)
	}
	return out, nil
}

// runGCMemory measures the peak RSS of GC removing n stale records, iters
// times, refilling before each run.
func runGCMemory(ctx context.Context, r *runner, n, iters int) (gcMemPoint, error) {
	dir := r.env.path("gc-mem")
	name := netName("gc-mem")
	list, err := chain(r.env, name, "macvlan", 119, map[string]any{"type": "macguard", "dataDir": dir})
	if err != nil {
		return gcMemPoint{}, err
	}
	var kib []int64
	for range iters {
		if err := fillState(dir, name, n); err != nil {
			return gcMemPoint{}, err
		}
		col := &collector{}
		if err := r.cni.GCNetworkList(withProbe(withCollector(ctx, col)), list, &libcni.GCArgs{}); err != nil {
			return gcMemPoint{}, fmt.Errorf("GC of %d stale records under rssprobe: %w", n, err)
		}
		c, ok := (sample{Calls: col.calls}).meta("macguard")
		if !ok || !c.Probed {
			return gcMemPoint{}, fmt.Errorf("GC of %d stale records: macguard did not run under rssprobe", n)
		}
		kib = append(kib, c.MaxRSSKiB)
	}
	return gcMemPoint{Records: n, RSS: summarizeRSS(kib)}, nil
}

// fillTarget judges "ADD and DEL stay flat as the node fills up": the p50
// with the most records over the p50 with the fewest, for both.
func fillTarget(r *results) (target, bool) {
	if len(r.Fill) < 2 {
		return target{}, false
	}
	first, last := r.Fill[0], r.Fill[len(r.Fill)-1]
	v := max(last.ADDGrowth, last.DELGrowth)
	return target{
		Name: fmt.Sprintf("macguard ADD and DEL with %d records in the data dir vs %d (p50, plugin process alone)", last.Records, first.Records),
		Want: "<= 1.05x", Value: v, Met: v <= 1.05,
		Figure: fmt.Sprintf("ADD %.2f -> %.2f ms (%.2fx), DEL %.2f -> %.2f ms (%.2fx)",
			first.ADD.P50, last.ADD.P50, last.ADDGrowth, first.DEL.P50, last.DEL.P50, last.DELGrowth),
	}, true
}

// fillTables are the node fill-up figures for the report.
func fillTables(r *results) []table {
	var ts []table
	if len(r.Fill) > 0 {
		t := table{
			title:  fmt.Sprintf("Node fill-up: macvlan + macguard enforcing a MAC, macguard process alone, ms (n=%d each)", r.Fill[0].ADD.N),
			header: []string{"records in dataDir", "ADD p50", "ADD p95", "DEL p50", "DEL p95", "ADD growth", "DEL growth"},
		}
		for _, p := range r.Fill {
			t.rows = append(t.rows, []string{strconv.Itoa(p.Records), f2(p.ADD.P50), f2(p.ADD.P95), f2(p.DEL.P50), f2(p.DEL.P95), fx(p.ADDGrowth), fx(p.DELGrowth)})
		}
		ts = append(ts, t)
	}
	if r.GCMemory.RSS.N > 0 {
		ts = append(ts, table{
			title:  fmt.Sprintf("GC of %d stale records: macguard peak RSS, MiB (n=%d, under rssprobe)", r.GCMemory.Records, r.GCMemory.RSS.N),
			header: []string{"p50", "max"},
			rows:   [][]string{{f2(r.GCMemory.RSS.P50), f2(r.GCMemory.RSS.Max)}},
		})
	}
	return ts
}
