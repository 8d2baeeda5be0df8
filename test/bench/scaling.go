package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/macguard-cni/macguard/pkg/state"
)

// throughputPoint is one (variant, concurrency) measurement, the median
// round of several.
type throughputPoint struct {
	Variant     string `json:"variant"`
	Concurrency int    `json:"concurrency"`
	// Pods went through ADD and DEL in the level, c at a time.
	Pods       int       `json:"pods"`
	PodsPerSec float64   `json:"pods_per_sec"`
	Rounds     []float64 `json:"rounds_pods_per_sec"`
	// Speedup is PodsPerSec over the same variant's at the lowest level of
	// the sweep, SpeedupBase: concurrency 1 unless -concurrency says else.
	Speedup     float64 `json:"speedup"`
	SpeedupBase int     `json:"speedup_vs_concurrency"`
	ADD         dist    `json:"add"`
	DEL         dist    `json:"del"`
	// CoresBusy is the CPU time of the bench and every plugin process it
	// reaped, per second of wall time; MachineBusy is the whole machine's
	// (other users included) from /proc/stat, in cores.
	CoresBusy   float64 `json:"cores_busy"`
	MachineBusy float64 `json:"machine_busy_cores"`
}

// tputPlan sizes the levels of the throughput sweep.
type tputPlan struct {
	minPods, perWorker int
}

// pods is how many pods the level with c concurrent workers runs: enough
// that every worker has perWorker of them, so that c are really in flight
// (a level with fewer pods than workers leaves the rest idle and measures
// a lower concurrency than it is labelled with), and at least minPods, so
// the low levels last long enough to time.
func (p tputPlan) pods(c int) int { return max(p.minPods, p.perWorker*c) }

// runThroughput measures ADD+DEL throughput of each variant at each
// concurrency c (ascending): plan.pods(c) pods go through ADD then DEL, c
// at a time. The pod namespaces are made beforehand so only CNI work is
// timed. Rounds repeat the whole sweep with the variant order alternating.
func runThroughput(ctx context.Context, r *runner, vs []*variant, levels []int, plan tputPlan, rounds int, progress func(string)) ([]throughputPoint, error) {
	most := 0
	for _, c := range levels {
		most = max(most, plan.pods(c))
	}
	netnses := make([]ns.NetNS, most)
	for i := range netnses {
		n, err := r.env.newNetns("tput")
		if err != nil {
			return nil, err
		}
		netnses[i] = n
	}
	defer func() {
		for _, n := range netnses {
			r.env.dropNetns(n)
		}
	}()

	type key struct {
		v string
		c int
	}
	type roundResult struct {
		pps            float64
		adds, dels     []time.Duration
		cores, machine float64
	}
	results := map[key][]roundResult{}
	for round := 0; round < rounds; round++ {
		for _, c := range levels {
			order := slices.Clone(vs)
			if round%2 == 1 {
				slices.Reverse(order)
			}
			pods := plan.pods(c)
			for _, v := range order {
				vi := slices.Index(vs, v)
				cpu0, stat0 := cpuNow(), machineNow()
				start := time.Now()
				adds, dels, err := r.churn(ctx, v, netnses[:pods], c, func(i int) pod {
					id := fmt.Sprintf("tput-%s-c%d-r%d-%d", safe(v.Key), c, round, i)
					return pod{ID: id, Name: id, MAC: requestedMAC(0x40+vi, i)}
				})
				wall := time.Since(start)
				if err != nil {
					return nil, fmt.Errorf("throughput %s at concurrency %d: %w", v.Key, c, err)
				}
				results[key{v.Key, c}] = append(results[key{v.Key, c}], roundResult{
					pps:     float64(pods) / wall.Seconds(),
					adds:    adds,
					dels:    dels,
					cores:   (cpuNow() - cpu0).Seconds() / wall.Seconds(),
					machine: machineNow().busyCores(stat0),
				})
				progress(fmt.Sprintf("throughput: round %d, %s x%d (%d pods): %.1f pods/s", round+1, v.Key, c, pods, float64(pods)/wall.Seconds()))
			}
		}
	}

	var out []throughputPoint
	for _, v := range vs {
		var base float64
		for _, c := range levels {
			rr := results[key{v.Key, c}]
			// The median round by throughput stands for the level; its
			// neighbours are listed so the spread is visible.
			slices.SortFunc(rr, func(a, b roundResult) int {
				switch {
				case a.pps < b.pps:
					return -1
				case a.pps > b.pps:
					return 1
				}
				return 0
			})
			med := percentile(rr, 50)
			var all []float64
			for _, x := range rr {
				all = append(all, round2(x.pps))
			}
			if c == levels[0] {
				base = med.pps
			}
			out = append(out, throughputPoint{
				Variant: v.Key, Concurrency: c, Pods: plan.pods(c),
				PodsPerSec: round2(med.pps), Rounds: all, Speedup: ratio(med.pps, base), SpeedupBase: levels[0],
				ADD: summarize(med.adds), DEL: summarize(med.dels),
				CoresBusy: round2(med.cores), MachineBusy: round2(med.machine),
			})
		}
	}
	return out, nil
}

// churn puts one pod per namespace through ADD and DEL with c workers and
// returns the chain times.
func (r *runner) churn(ctx context.Context, v *variant, netnses []ns.NetNS, c int, mk func(int) pod) (adds, dels []time.Duration, err error) {
	work := make(chan int)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				p := mk(i)
				p.Netns = netnses[i]
				a, _, aerr := r.add(ctx, v, &p)
				d, derr := r.del(context.WithoutCancel(ctx), v, &p)
				mu.Lock()
				if aerr != nil || derr != nil {
					errs = append(errs, aerr, derr)
				} else {
					adds = append(adds, a.Chain)
					dels = append(dels, d.Chain)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range netnses {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	return adds, dels, errors.Join(append(errs, ctx.Err())...)
}

// ifacesPoint compares ADD and DEL in a sandbox holding only lo with one
// that already holds 200 interfaces.
type ifacesPoint struct {
	Variant string `json:"variant"`
	Meta    string `json:"meta,omitempty"`
	// Interfaces already in the pod namespace before ADD (lo included).
	Interfaces int  `json:"interfaces"`
	ChainADD   dist `json:"chain_add"`
	ChainDEL   dist `json:"chain_del"`
	MetaADD    dist `json:"meta_add,omitempty"`
	// Growth is chain (or meta) ADD p50 here over the same at 1 interface.
	ChainGrowth float64 `json:"chain_add_growth"`
	MetaGrowth  float64 `json:"meta_add_growth,omitempty"`
}

// runIfaces reuses two sandboxes for every iteration: a lean one (lo) and
// a crowded one (lo and `crowd`-1 veths, up, each with an address, so
// address dumps grow too). DEL leaves each as it was.
func runIfaces(ctx context.Context, r *runner, vs []*variant, crowd, iters int, progress func(string)) ([]ifacesPoint, error) {
	lean, err := r.env.newNetns("lean")
	if err != nil {
		return nil, err
	}
	defer r.env.dropNetns(lean)
	fat, err := r.env.newNetns("crowded")
	if err != nil {
		return nil, err
	}
	defer r.env.dropNetns(fat)
	// The crowd is veth ends whose peers sit in a sink namespace, so each
	// adds exactly one interface to the pod namespace, like the interfaces
	// of a pod with many attachments (dummy is not in every kernel).
	sink, err := r.env.newNetns("sink")
	if err != nil {
		return nil, err
	}
	defer r.env.dropNetns(sink)
	if err := fat.Do(func(ns.NetNS) error {
		if err := linkUp("lo"); err != nil {
			return err
		}
		for i := 1; i < crowd; i++ {
			name := fmt.Sprintf("crowd%d", i)
			veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: fmt.Sprintf("sink%d", i),
				PeerNamespace: netlink.NsFd(int(sink.Fd()))}
			if err := netlink.LinkAdd(veth); err != nil {
				return fmt.Errorf("adding %s: %w", name, err)
			}
			l, err := netlinksafe.LinkByName(name)
			if err != nil {
				return fmt.Errorf("finding %s: %w", name, err)
			}
			addr, err := netlink.ParseAddr(fmt.Sprintf("198.19.%d.%d/32", i/256, i%256))
			if err != nil {
				return err
			}
			if err := netlink.AddrAdd(l, addr); err != nil {
				return fmt.Errorf("addressing %s: %w", name, err)
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return fmt.Errorf("bringing %s up: %w", name, err)
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("crowding the sandbox: %w", err)
	}
	if err := lean.Do(func(ns.NetNS) error { return linkUp("lo") }); err != nil {
		return nil, err
	}

	type key struct {
		v   string
		fat bool
	}
	adds, dels := map[key][]sample{}, map[key][]sample{}
	for it := 0; it < iters; it++ {
		for k := range 2 * len(vs) {
			// Rotate over (variant, sandbox) pairs like the latency rounds.
			j := (it + k) % (2 * len(vs))
			v, crowded := vs[j/2], j%2 == 1
			n := lean
			if crowded {
				n = fat
			}
			id := fmt.Sprintf("ifs-%s-%t-%d", safe(v.Key), crowded, it)
			p := pod{ID: id, Name: id, MAC: requestedMAC(0x80+j, it), Netns: n}
			a, res, err := r.add(ctx, v, &p)
			if err == nil {
				err = r.verify(v, &p, a, res)
			}
			d, derr := r.del(context.WithoutCancel(ctx), v, &p)
			if err := errors.Join(err, derr); err != nil {
				return nil, fmt.Errorf("interfaces sweep: %w", err)
			}
			adds[key{v.Key, crowded}] = append(adds[key{v.Key, crowded}], a)
			dels[key{v.Key, crowded}] = append(dels[key{v.Key, crowded}], d)
		}
	}
	progress(fmt.Sprintf("interfaces: %d iterations x %d chains x {1, %d} interfaces done", iters, len(vs), crowd))

	var out []ifacesPoint
	for _, v := range vs {
		var base ifacesPoint
		for _, crowded := range []bool{false, true} {
			k := key{v.Key, crowded}
			pt := ifacesPoint{Variant: v.Key, Meta: v.Meta, Interfaces: 1,
				ChainADD: summarize(chainTimes(adds[k])), ChainDEL: summarize(chainTimes(dels[k]))}
			if crowded {
				pt.Interfaces = crowd
			}
			if v.Meta != "" {
				pt.MetaADD = summarize(metaTimes(adds[k], v.Meta, wallTime))
			}
			if !crowded {
				base = pt
			}
			pt.ChainGrowth = ratio(pt.ChainADD.P50, base.ChainADD.P50)
			if v.Meta != "" {
				pt.MetaGrowth = ratio(pt.MetaADD.P50, base.MetaADD.P50)
			}
			out = append(out, pt)
		}
	}
	return out, nil
}

// gcPoint is macguard's GC with a given number of records in its dataDir.
type gcPoint struct {
	Entries int `json:"entries"`
	// Stale: every record is stale and GC removes them all; otherwise every
	// record is a valid attachment and GC keeps them (the periodic case).
	Stale bool `json:"stale"`
	// Macguard is the macguard process alone; Chain is libcni's whole
	// GCNetworkList (macvlan + macguard), JSON of the valid list included.
	Macguard dist    `json:"macguard"`
	Chain    dist    `json:"chain"`
	Growth   float64 `json:"macguard_growth"`
}

// runGC measures GC with few and many state records, both when all are
// valid and when all are stale. Records are written with package state, so
// they are exactly what ADD writes; refills are not timed.
func runGC(ctx context.Context, r *runner, sizes []int, iters int, progress func(string)) ([]gcPoint, error) {
	type gcCase struct {
		entries int
		stale   bool
		dir     string
		list    *libcni.NetworkConfigList
		valid   []types.GCAttachment
	}
	var cases []*gcCase
	for _, stale := range []bool{false, true} {
		for i, n := range sizes {
			dir := r.env.path("gc", fmt.Sprintf("%d-%t", n, stale))
			name := netName(fmt.Sprintf("gc-%d-%t", n, stale))
			list, err := chain(r.env, name, "macvlan", 100+i, map[string]any{"type": "macguard", "dataDir": dir})
			if err != nil {
				return nil, err
			}
			c := &gcCase{entries: n, stale: stale, dir: dir, list: list}
			if !stale {
				for j := range n {
					c.valid = append(c.valid, types.GCAttachment{ContainerID: gcContainer(j), IfName: podIfName})
				}
				if err := fillState(dir, name, n); err != nil {
					return nil, err
				}
			}
			cases = append(cases, c)
		}
	}
	mg, chains := map[*gcCase][]time.Duration{}, map[*gcCase][]time.Duration{}
	for it := 0; it < iters; it++ {
		for k := range cases {
			c := cases[(it+k)%len(cases)]
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if c.stale {
				if err := fillState(c.dir, c.list.Name, c.entries); err != nil {
					return nil, err
				}
			}
			col := &collector{}
			start := time.Now()
			err := r.cni.GCNetworkList(withCollector(ctx, col), c.list, &libcni.GCArgs{ValidAttachments: c.valid})
			wall := time.Since(start)
			if err != nil {
				return nil, fmt.Errorf("GC with %d records (stale %t): %w", c.entries, c.stale, err)
			}
			s := sample{Chain: wall, Calls: col.calls}
			call, ok := s.meta("macguard")
			if !ok {
				return nil, fmt.Errorf("GC with %d records: libcni never ran macguard", c.entries)
			}
			left, err := state.New(c.dir).Keys()
			if err != nil {
				return nil, err
			}
			if want := map[bool]int{true: 0, false: c.entries}[c.stale]; len(left) != want {
				return nil, fmt.Errorf("GC with %d records (stale %t) left %d, want %d", c.entries, c.stale, len(left), want)
			}
			mg[c] = append(mg[c], call.Wall)
			chains[c] = append(chains[c], wall)
		}
	}
	progress(fmt.Sprintf("GC: %d iterations x %d cases done", iters, len(cases)))
	var out []gcPoint
	var base float64
	for _, c := range cases {
		pt := gcPoint{Entries: c.entries, Stale: c.stale, Macguard: summarize(mg[c]), Chain: summarize(chains[c])}
		if c.entries == sizes[0] {
			base = pt.Macguard.P50
		}
		pt.Growth = ratio(pt.Macguard.P50, base)
		out = append(out, pt)
	}
	return out, nil
}

func gcContainer(j int) string { return fmt.Sprintf("gc-%06d", j) }

// fillState writes n records of network into dir the way ADD does (GC
// and DEL touch only their own network's records).
func fillState(dir, network string, n int) error {
	s := state.New(dir)
	unlock, err := s.Lock(true)
	if err != nil {
		return fmt.Errorf("locking %s to fill it: %w", dir, err)
	}
	defer unlock()
	now := time.Now().UTC()
	for j := range n {
		rec := state.Record{
			Network: network, ContainerID: gcContainer(j), IfName: podIfName, Netns: "/run/netns/gone",
			OriginalMAC: "02:00:00:00:00:01", AppliedMAC: requestedMAC(0xc0, j), Created: now,
		}
		if err := s.Save(rec); err != nil {
			return fmt.Errorf("filling %s: %w", dir, err)
		}
	}
	return nil
}
