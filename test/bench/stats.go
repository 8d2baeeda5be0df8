package main

import (
	"math"
	"slices"
	"time"
)

// dist summarises a set of durations in milliseconds.
type dist struct {
	N   int     `json:"n"`
	Min float64 `json:"min_ms"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func summarize(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return dist{
		N:   len(s),
		Min: ms(s[0]),
		P50: ms(percentile(s, 50)),
		P95: ms(percentile(s, 95)),
		P99: ms(percentile(s, 99)),
		Max: ms(s[len(s)-1]),
	}
}

// percentile is the nearest-rank percentile of a sorted slice: always a
// value that was measured, never an interpolation between two.
func percentile[T any](sorted []T, p float64) T {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// ratio of two medians, 0 when the denominator is missing.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round3(a / b)
}

// rssDist summarises peak-RSS readings (KiB) in MiB.
type rssDist struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_mib"`
	Max float64 `json:"max_mib"`
}

func summarizeRSS(kib []int64) rssDist {
	if len(kib) == 0 {
		return rssDist{}
	}
	s := slices.Clone(kib)
	slices.Sort(s)
	return rssDist{N: len(s), P50: mib(percentile(s, 50)), Max: mib(s[len(s)-1])}
}

func mib(kib int64) float64 { return round2(float64(kib) / 1024) }
