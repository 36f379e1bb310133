package measure

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Op is one measured call. i numbers the calls of a run from 0, so an Op can make each call's objects unique.
type Op func(i int) error

// Closed is a closed loop: Workers goroutines each start their next call as soon as the last one returns, so
// it finds the throughput at saturation. It stops starting calls after Count calls (if > 0), after Duration
// (if > 0), or when the context ends, whichever comes first.
type Closed struct {
	Workers  int
	Count    int
	Duration time.Duration
}

// Run runs op and summarizes the calls; the interval ends when the last call has returned.
func (c Closed) Run(ctx context.Context, op Op) Summary {
	if c.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Duration)
		defer cancel()
	}
	rec := NewRecorder()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(c.Workers, 1) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if c.Count > 0 && i >= c.Count {
					return
				}
				t := time.Now()
				err := op(i)
				rec.Record(time.Since(t), err)
			}
		})
	}
	wg.Wait()
	rec.Stop()
	return rec.Summary()
}

// Open is an open loop: calls start on a fixed schedule of Rate per second for Duration, whether or not the
// earlier ones have returned, so it shows latency below saturation. Each call's latency runs from its
// scheduled start, so queueing behind slow calls counts (no coordinated omission). At most MaxInFlight calls
// (if > 0) run at once; a call due while all are busy waits, and the wait is part of its latency.
//
// The schedule is fixed rather than a token bucket (golang.org/x/time/rate): a generator that falls behind
// catches up on the calls it owes instead of silently offering a lower rate than the report states.
type Open struct {
	Rate        float64
	Duration    time.Duration
	MaxInFlight int
}

// Run runs op int(Duration*Rate) times, or until the context ends, and summarizes the calls.
func (o Open) Run(ctx context.Context, op Op) Summary {
	rec := NewRecorder()
	if o.Rate <= 0 {
		rec.Stop()
		return rec.Summary()
	}
	interval := time.Duration(float64(time.Second) / o.Rate)
	total := int(o.Duration / interval)
	var sem chan struct{}
	if o.MaxInFlight > 0 {
		sem = make(chan struct{}, o.MaxInFlight)
	}
	var wg sync.WaitGroup
	for i := 0; i < total && ctx.Err() == nil; i++ {
		due := rec.start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		if sem != nil {
			sem <- struct{}{}
		}
		wg.Go(func() {
			err := op(i)
			rec.Record(time.Since(due), err)
			if sem != nil {
				<-sem
			}
		})
	}
	wg.Wait()
	rec.Stop()
	return rec.Summary()
}
