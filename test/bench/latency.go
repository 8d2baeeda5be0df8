package main

import (
	"context"
	"fmt"
	"time"
)

// opSamples holds one variant's measured operations.
type opSamples struct {
	ops map[string][]sample // "ADD", "CHECK", "DEL"
}

var ops = []string{"ADD", "CHECK", "DEL"}

// runLatency runs warmup+n rounds. Each round runs every variant once, in
// an order rotated by one each round (A B C, B C A, C A B, ...): drift in
// the machine's load lands on every variant alike, and no variant always
// follows the same neighbour. Warm-up rounds fill the page cache with the
// binaries and are not recorded.
func runLatency(ctx context.Context, r *runner, vs []*variant, warmup, n int, progress func(string)) (map[string]*opSamples, error) {
	out := map[string]*opSamples{}
	for _, v := range vs {
		out[v.Key] = &opSamples{ops: map[string][]sample{}}
	}
	started := time.Now()
	for round := 0; round < warmup+n; round++ {
		for k := range vs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			vi := (round + k) % len(vs)
			v := vs[vi]
			p := pod{
				ID:   fmt.Sprintf("lat-%s-%d", safe(v.Key), round),
				Name: fmt.Sprintf("lat-%s-%d", safe(v.Key), round),
				MAC:  requestedMAC(vi, round),
			}
			add, chk, del, err := r.lifecycle(ctx, v, p)
			if err != nil {
				return nil, fmt.Errorf("latency round %d: %w", round, err)
			}
			if round < warmup {
				continue
			}
			s := out[v.Key]
			s.ops["ADD"] = append(s.ops["ADD"], add)
			s.ops["CHECK"] = append(s.ops["CHECK"], chk)
			s.ops["DEL"] = append(s.ops["DEL"], del)
		}
		if (round+1)%50 == 0 || round+1 == warmup {
			progress(fmt.Sprintf("latency: %d/%d rounds (%d warm-up), %s", round+1, warmup+n, warmup, time.Since(started).Round(time.Second)))
		}
	}
	return out, nil
}

// chainTimes and metaTimes extract durations for summarising.
func chainTimes(ss []sample) []time.Duration {
	out := make([]time.Duration, 0, len(ss))
	for _, s := range ss {
		out = append(out, s.Chain)
	}
	return out
}

// metaTimes are, of every sample that ran plugin typ, one duration of its
// call: wallTime or cpuTime.
func metaTimes(ss []sample, typ string, of func(call) time.Duration) []time.Duration {
	var out []time.Duration
	for _, s := range ss {
		if c, ok := s.meta(typ); ok {
			out = append(out, of(c))
		}
	}
	return out
}

func wallTime(c call) time.Duration { return c.Wall }

func cpuTime(c call) time.Duration { return c.CPU }
