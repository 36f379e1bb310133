// Package measure is what the benchmark harnesses under bench/ share: recording call latencies, driving closed-
// and open-loop load, printing the report tables, and reading the figures a harness reports about the processes
// it measures (resident memory, Prometheus metrics). It knows nothing of cardplane, so it unit-tests without
// an API server.
package measure

import (
	"slices"
	"sync"
	"time"
)

// Recorder collects call latencies and errors from many goroutines over a measured interval, which runs
// from NewRecorder to Stop.
type Recorder struct {
	mu       sync.Mutex
	lat      []time.Duration
	errs     int
	firstErr error
	start    time.Time
	stop     time.Time
}

// NewRecorder returns a Recorder whose interval starts now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Record adds one call. A failed call counts as an error only: its latency (often a fast refusal or a
// timeout) would distort the percentiles and the throughput of the calls that did their work.
func (r *Recorder) Record(d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs++
		if r.firstErr == nil {
			r.firstErr = err
		}
		return
	}
	r.lat = append(r.lat, d)
}

// Stop ends the measured interval; later calls still count, but the interval stays. Only the first Stop counts.
func (r *Recorder) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop.IsZero() {
		r.stop = time.Now()
	}
}

// Summary describes the calls recorded so far; before Stop the interval ends now.
func (r *Recorder) Summary() Summary {
	r.mu.Lock()
	end := r.stop
	if end.IsZero() {
		end = time.Now()
	}
	s := Summary{Count: len(r.lat), Errors: r.errs, FirstErr: r.firstErr, Elapsed: end.Sub(r.start)}
	sorted := slices.Clone(r.lat)
	r.mu.Unlock()

	if len(sorted) == 0 {
		return s
	}
	slices.Sort(sorted)
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	s.Mean = sum / time.Duration(len(sorted))
	s.P50, s.P90, s.P99 = percentile(sorted, 50), percentile(sorted, 90), percentile(sorted, 99)
	s.Max = sorted[len(sorted)-1]
	return s
}

// Summary is what a Recorder saw: successful calls with their latency distribution, and errors.
type Summary struct {
	Count    int           // successful calls
	Errors   int           // failed calls
	FirstErr error         // the first failure, for the harness to show
	Elapsed  time.Duration // the measured interval
	Mean     time.Duration
	P50      time.Duration
	P90      time.Duration
	P99      time.Duration
	Max      time.Duration
}

// Rate is the throughput: successful calls per second of the measured interval.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Count) / s.Elapsed.Seconds()
}

// percentile is the exact nearest-rank p-th percentile (0 < p <= 100) of sorted: the smallest latency that at
// least p% of the calls did not exceed. No interpolation, so every figure is one a call really took; integer
// arithmetic, so 99% of 100 calls is rank 99, not 100 through a float rounding up.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	return sorted[min(max(rank-1, 0), len(sorted)-1)]
}
