package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"time"
)

// memResult is one plugin's peak RSS within one chain, measured under
// rssprobe.
type memResult struct {
	Variant string  `json:"variant"`
	Plugin  string  `json:"plugin"`
	ADD     rssDist `json:"add"`
	CHECK   rssDist `json:"check"`
	DEL     rssDist `json:"del"`
	All     rssDist `json:"all"`
}

// runMemory runs iters pod lifecycles per variant, interleaved, with every
// plugin started under rssprobe. It is separate from the latency rounds
// because the probe adds a process start to every plugin.
func runMemory(ctx context.Context, r *runner, vs []*variant, iters int, progress func(string)) ([]memResult, error) {
	type key struct{ v, plugin, op string }
	kib := map[key][]int64{}
	var plugins = map[string][]string{}
	for it := 0; it < iters; it++ {
		for k := range vs {
			vi := (it + k) % len(vs)
			v := vs[vi]
			id := fmt.Sprintf("mem-%s-%d", safe(v.Key), it)
			add, chk, del, err := r.lifecycle(withProbe(ctx), v, pod{ID: id, Name: id, MAC: requestedMAC(0xa0+vi, it)})
			if err != nil {
				return nil, fmt.Errorf("memory pass: %w", err)
			}
			for op, s := range map[string]sample{"ADD": add, "CHECK": chk, "DEL": del} {
				for _, c := range s.Calls {
					if !c.Probed {
						return nil, fmt.Errorf("memory pass: %s %s ran without the probe", c.Plugin, op)
					}
					kib[key{v.Key, c.Plugin, op}] = append(kib[key{v.Key, c.Plugin, op}], c.MaxRSSKiB)
					if !slices.Contains(plugins[v.Key], c.Plugin) {
						plugins[v.Key] = append(plugins[v.Key], c.Plugin)
					}
				}
			}
		}
	}
	progress(fmt.Sprintf("memory: %d lifecycles x %d chains under rssprobe done", iters, len(vs)))
	var out []memResult
	for _, v := range vs {
		for _, p := range plugins[v.Key] {
			m := memResult{Variant: v.Key, Plugin: p,
				ADD: summarizeRSS(kib[key{v.Key, p, "ADD"}]), CHECK: summarizeRSS(kib[key{v.Key, p, "CHECK"}]), DEL: summarizeRSS(kib[key{v.Key, p, "DEL"}])}
			var all []int64
			for _, op := range ops {
				all = append(all, kib[key{v.Key, p, op}]...)
			}
			m.All = summarizeRSS(all)
			out = append(out, m)
		}
	}
	return out, nil
}

// probeFloor is what rssprobe reports for /bin/true: the smallest peak it
// can report, since the child starts out sharing the probe's memory.
func probeFloor(probe string) (float64, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("pipe for rssprobe: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(probe, "/bin/true")
	cmd.ExtraFiles = []*os.File{w}
	err = cmd.Start()
	_ = w.Close() // only the child may hold the write end, or the read never sees EOF
	if err != nil {
		return 0, fmt.Errorf("starting %s: %w", probe, err)
	}
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("%s /bin/true: %w", probe, err)
	}
	kib, _, err := readProbe(r)
	if err != nil {
		return 0, err
	}
	return mib(kib), nil
}

// startupResult is the cost of starting a plugin at all: a VERSION query,
// which every plugin answers without touching the network.
type startupResult struct {
	Plugin string `json:"plugin"`
	Wall   dist   `json:"wall"`
	CPU    dist   `json:"cpu"`
}

// runStartup times VERSION for each plugin, interleaved, through libcni's
// GetVersionInfo as a runtime asks it.
func runStartup(ctx context.Context, r *runner, plugins []string, iters int, progress func(string)) ([]startupResult, error) {
	wall, cpu := map[string][]time.Duration{}, map[string][]time.Duration{}
	for it := 0; it < iters; it++ {
		for k := range plugins {
			p := plugins[(it+k)%len(plugins)]
			col := &collector{}
			if _, err := r.cni.GetVersionInfo(withCollector(ctx, col), p); err != nil {
				return nil, fmt.Errorf("VERSION of %s: %w", p, err)
			}
			if len(col.calls) != 1 {
				return nil, fmt.Errorf("VERSION of %s ran %d processes, want 1", p, len(col.calls))
			}
			wall[p] = append(wall[p], col.calls[0].Wall)
			cpu[p] = append(cpu[p], col.calls[0].CPU)
		}
	}
	progress(fmt.Sprintf("startup: %d VERSION calls x %d plugins done", iters, len(plugins)))
	var out []startupResult
	for _, p := range plugins {
		out = append(out, startupResult{Plugin: p, Wall: summarize(wall[p]), CPU: summarize(cpu[p])})
	}
	return out, nil
}
