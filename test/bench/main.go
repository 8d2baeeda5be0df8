// Command bench measures macguard the way users will feel it: whole CNI
// chains driven through libcni, as a container runtime drives them, in
// network namespaces it creates (never on the machine's own interfaces),
// against the reference tuning plugin and against chains with no
// meta-plugin at all. It is run by `make bench` (see hack/mk/bench.mk and
// docs/performance.md).
//
// The machine it runs on is shared and noisy, so the variants are
// interleaved round by round and the figures that matter are ratios
// between variants measured in the same run, not absolute times.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	macguard, plugins, probe, outDir, micro, command string
	n, warmup, memIters, startupIters                int
	concurrency                                      []int
	tputPods, tputPerWorker, tputRounds              int
	crowd, ifacesIters                               int
	gcSizes                                          []int
	gcIters                                          int
	fillSizes                                        []int
	fillIters                                        int
	skipScaling, quick                               bool
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags() (options, error) {
	var o options
	var conc, gcSizes, fillSizes string
	flag.StringVar(&o.macguard, "macguard", "bin/macguard", "macguard binary under test")
	flag.StringVar(&o.plugins, "plugins", ".cache/bench/plugins", "directory with the reference plugins (macvlan ptp bridge tuning host-local)")
	flag.StringVar(&o.probe, "rssprobe", ".cache/bench/rssprobe", "the rssprobe launcher (built from test/bench/rssprobe)")
	flag.StringVar(&o.outDir, "out", "bench", "where results.json and results.md go")
	flag.StringVar(&o.micro, "micro", "", "output of `go test -bench -benchmem` to include (optional)")
	flag.StringVar(&o.command, "command", "", "how the run was started, for the report (default: this command line)")
	flag.IntVar(&o.n, "n", 300, "measured ADD/CHECK/DEL rounds per variant")
	flag.IntVar(&o.warmup, "warmup", 10, "unrecorded warm-up rounds per variant")
	flag.IntVar(&o.memIters, "mem-iters", 20, "lifecycles per chain under rssprobe for peak RSS")
	flag.IntVar(&o.startupIters, "startup-iters", 100, "VERSION calls per plugin")
	flag.StringVar(&conc, "concurrency", "1,8,32,128", "concurrency levels of the throughput sweep")
	// A level of c concurrent pods runs max(tput-pods, tput-per-worker*c)
	// pods, so that c really are in flight and each worker goes round more
	// than once. The defaults, 48 and 2, give 48, 48, 64, 256 pods for 1, 8,
	// 32, 128: about 100 s for 3 chains x 3 rounds on 2 cores (12-100 pods/s
	// per chain), within a run of ~5 minutes.
	flag.IntVar(&o.tputPods, "tput-pods", 48, "least pods per throughput level")
	flag.IntVar(&o.tputPerWorker, "tput-per-worker", 2, "least pods per concurrent worker in a throughput level")
	flag.IntVar(&o.tputRounds, "tput-rounds", 3, "throughput sweeps (the median is reported)")
	flag.IntVar(&o.crowd, "crowd", 200, "interfaces in the crowded pod namespace (lo included)")
	flag.IntVar(&o.ifacesIters, "ifaces-iters", 30, "iterations per chain and namespace in the interfaces sweep")
	flag.StringVar(&gcSizes, "gc-sizes", "10,10000", "state entries in the GC sweep")
	flag.IntVar(&o.gcIters, "gc-iters", 10, "GC runs per case")
	flag.StringVar(&fillSizes, "fill-sizes", "0,1000,10000", "records in the data dir in the node fill-up sweep (the first is the base)")
	flag.IntVar(&o.fillIters, "fill-iters", 40, "ADD/DEL lifecycles per size in the node fill-up sweep")
	flag.BoolVar(&o.skipScaling, "skip-scaling", false, "only the latency comparison")
	flag.BoolVar(&o.quick, "quick", false, "tiny counts: a smoke test of the harness, not a measurement")
	flag.Parse()
	if o.quick {
		// tput-pods below 2x8 so the smoke run goes through the per-worker
		// rule too (8 pods at 1, 16 at 8).
		o.n, o.warmup, o.tputPods, o.tputPerWorker, o.tputRounds, o.ifacesIters, o.gcIters, o.memIters, o.startupIters = 10, 2, 8, 2, 1, 4, 2, 3, 10
		conc, gcSizes, fillSizes = "1,8", "10,1000", "0,100"
		o.fillIters = 4
	}
	var err error
	if o.concurrency, err = intList(conc); err != nil {
		return o, fmt.Errorf("-concurrency: %w", err)
	}
	if o.gcSizes, err = intList(gcSizes); err != nil {
		return o, fmt.Errorf("-gc-sizes: %w", err)
	}
	if o.fillSizes, err = intListFrom(fillSizes, 0); err != nil {
		return o, fmt.Errorf("-fill-sizes: %w", err)
	}
	if o.command == "" {
		o.command = strings.Join(os.Args, " ")
	}
	if o.n < 1 || o.warmup < 0 || o.tputPods < 1 || o.tputPerWorker < 1 || o.tputRounds < 1 || o.ifacesIters < 1 || o.gcIters < 1 || o.fillIters < 1 || o.memIters < 1 || o.startupIters < 1 || o.crowd < 2 {
		return o, errors.New("counts must be positive (and -crowd at least 2)")
	}
	return o, nil
}

// intList parses "1,8,32", sorted and without repeats: the sweeps compare
// every level with the first (throughput speedup, GC growth) and judge the
// last as the top one, which only holds for ascending lists.
func intList(s string) ([]int, error) { return intListFrom(s, 1) }

// intListFrom is intList with least as the smallest value allowed (0 for
// the fill-up sweep, whose base is an empty data dir).
func intListFrom(s string, least int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < least {
			return nil, fmt.Errorf("%q is not a list of integers of at least %d", s, least)
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func run() (err error) {
	o, perr := parseFlags()
	if perr != nil {
		return perr
	}
	if os.Geteuid() != 0 {
		return errors.New("creates network namespaces and mounts a tmpfs: run as root (sudo make bench)")
	}
	started := time.Now()
	res := &results{
		Generated: started.UTC().Format(time.RFC3339),
		Command:   o.command,
		Machine:   describeMachine(),
		Settings: settings{
			Iterations: o.n, Warmup: o.warmup, Concurrency: o.concurrency, TputPods: o.tputPods, TputPerWorker: o.tputPerWorker, TputRounds: o.tputRounds,
			Crowd: o.crowd, IfacesIters: o.ifacesIters, GCSizes: o.gcSizes, GCIters: o.gcIters,
			FillSizes: o.fillSizes, FillIters: o.fillIters,
			MemIters: o.memIters, StartupIters: o.startupIters, CNIVersion: cniVersion, StateOnTmpfs: true,
			Quick: o.quick,
		},
	}
	if o.quick {
		res.Notice = smokeNotice
	}

	names := []string{"macguard", "tuning", "macvlan", "ptp", "bridge", "host-local"}
	paths := map[string]string{"macguard": o.macguard}
	for _, n := range names[1:] {
		paths[n] = filepath.Join(o.plugins, n)
	}
	if res.Binaries, err = binaries(paths, names); err != nil {
		return fmt.Errorf("%w (make bench builds and installs them)", err)
	}

	if res.ProbeFloorMiB, err = probeFloor(o.probe); err != nil {
		return fmt.Errorf("%w (make bench builds it)", err)
	}

	// Interrupts cancel the context; every loop checks it and the deferred
	// Close removes the namespaces and the tmpfs on the way out.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Whatever failed after an interrupt failed because of it (a plugin
	// killed mid-way); say so rather than blame the plugin.
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("interrupted; namespaces and tmpfs removed (%w)", err)
		}
	}()

	e, err := newEnv()
	if err != nil {
		return fmt.Errorf("setting up: %w", err)
	}
	defer e.Close()

	// A CNI_PATH holding exactly the binaries under test, so nothing else
	// on the machine with the same name can be picked up.
	binDir := e.path("cni-bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", binDir, err)
	}
	for _, b := range res.Binaries {
		if err := os.Symlink(b.Path, filepath.Join(binDir, b.Plugin)); err != nil {
			return fmt.Errorf("linking %s into the CNI path: %w", b.Plugin, err)
		}
	}
	probe, err := filepath.Abs(o.probe)
	if err != nil {
		return fmt.Errorf("locating rssprobe: %w", err)
	}
	r := newRunner(e, []string{binDir}, probe)
	progress := func(s string) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(started).Seconds(), s)
	}

	vs, err := buildVariants(e)
	if err != nil {
		return err
	}
	progress(fmt.Sprintf("latency: %d variants x (%d warm-up + %d) rounds", len(vs), o.warmup, o.n))
	lat, err := runLatency(ctx, r, vs, o.warmup, o.n, progress)
	if err != nil {
		return err
	}
	res.Chains, res.Meta = buildChains(vs, lat)

	if res.Startup, err = runStartup(ctx, r, names, o.startupIters, progress); err != nil {
		return err
	}
	var metaVariants []*variant
	for _, v := range vs {
		if v.Meta != "" {
			metaVariants = append(metaVariants, v)
		}
	}
	if res.Memory, err = runMemory(ctx, r, metaVariants, o.memIters, progress); err != nil {
		return err
	}
	attachRSS(res.Meta, res.Memory)

	if !o.skipScaling {
		byKey := map[string]*variant{}
		for _, v := range vs {
			byKey[v.Key] = v
		}
		if res.Throughput, err = runThroughput(ctx, r, []*variant{byKey[vFloorMacvlan], byKey[vTuning], byKey[vMGEnforce]},
			o.concurrency, tputPlan{minPods: o.tputPods, perWorker: o.tputPerWorker}, o.tputRounds, progress); err != nil {
			return err
		}
		if res.Interfaces, err = runIfaces(ctx, r, []*variant{byKey[vFloorMacvlan], byKey[vTuning], byKey[vMGEnforce]},
			o.crowd, o.ifacesIters, progress); err != nil {
			return err
		}
		if res.GC, err = runGC(ctx, r, o.gcSizes, o.gcIters, progress); err != nil {
			return err
		}
		if res.Fill, err = runFill(ctx, r, o.fillSizes, o.fillIters, progress); err != nil {
			return err
		}
		if res.GCMemory, err = runGCMemory(ctx, r, o.gcSizes[len(o.gcSizes)-1], o.memIters); err != nil {
			return err
		}
	}
	if o.micro != "" {
		if res.Micro, err = parseMicro(o.micro); err != nil {
			return err
		}
	}
	res.Machine.LoadAfter = loadavg()
	res.DurationS = time.Since(started).Round(time.Second).Seconds()
	res.Targets = evaluate(res)

	printText(os.Stdout, res)
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", o.outDir, err)
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	jsonPath := filepath.Join(o.outDir, "results.json")
	if err := os.WriteFile(jsonPath, append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", jsonPath, err)
	}
	mdPath := filepath.Join(o.outDir, "results.md")
	if err := writeMarkdown(mdPath, res); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s and %s\n", jsonPath, mdPath)
	return nil
}
