package main

import (
	"math"
	"slices"
	"time"
)

// latency summarizes request latencies, in milliseconds.
type latency struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// summarize sorts samples (in place) and returns their percentiles.
func summarize(samples []time.Duration) latency {
	if len(samples) == 0 {
		return latency{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, d := range samples {
		sum += d
	}
	return latency{
		Count: len(samples),
		Mean:  ms(sum / time.Duration(len(samples))),
		P50:   ms(percentile(samples, 0.50)),
		P90:   ms(percentile(samples, 0.90)),
		P99:   ms(percentile(samples, 0.99)),
		Max:   ms(samples[len(samples)-1]),
	}
}

// percentile returns the nearest-rank q-quantile of sorted samples: the
// smallest sample such that at least q of all samples are at most it.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
