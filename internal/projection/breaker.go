package projection

import (
	"context"
	"sync"
	"time"
)

// The circuit breaker of a destination: after breakerThreshold failures in a row its deliveries stop for a
// cooldown, then one probe is let through; a failed probe doubles the cooldown (up to breakerMaxCooldown), a
// delivery that succeeds closes the circuit. A dead destination then costs one request per cooldown instead
// of maxInFlight requests per backoff, and the states it holds up are not given up while it is down.
const (
	breakerThreshold   = 5
	breakerMinCooldown = 5 * time.Second
	breakerMaxCooldown = 2 * time.Minute
	// breakerPoll is how often a worker waiting on a probe looks again.
	breakerPoll = 100 * time.Millisecond
	// breakerWake is the longest a worker waits in a cooldown before it looks again.
	breakerWake = time.Second
)

type breaker struct {
	mu        sync.Mutex
	failures  int
	openUntil time.Time
	cooldown  time.Duration
	probing   bool
}

// allow blocks while the circuit is open. It reports whether the delivery it lets through is the probe, and
// false for ok when ctx ended.
func (b *breaker) allow(ctx context.Context, now func() time.Time) (probe, ok bool) {
	for {
		b.mu.Lock()
		if b.failures < breakerThreshold {
			b.mu.Unlock()
			return false, true
		}
		t := now()
		if !b.probing && !t.Before(b.openUntil) {
			b.probing = true
			b.mu.Unlock()
			return true, true
		}
		wait := b.openUntil.Sub(t)
		if b.probing || wait <= 0 {
			wait = breakerPoll
		}
		// Look again within a second even in a long cooldown: probeNow may end it early.
		wait = min(wait, breakerWake)
		b.mu.Unlock()
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false, false
		case <-timer.C:
		}
	}
}

// done records the outcome of a delivery allow let through.
func (b *breaker) done(probe, success bool, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case success:
		b.failures, b.cooldown, b.probing = 0, 0, false
	case probe:
		b.probing = false
		b.cooldown = min(max(2*b.cooldown, breakerMinCooldown), breakerMaxCooldown)
		b.openUntil = now.Add(b.cooldown)
	default:
		b.failures++
		if b.failures == breakerThreshold {
			b.cooldown = breakerMinCooldown
			b.openUntil = now.Add(b.cooldown)
		}
	}
}

// probeNow ends the cooldown of an open circuit: the next delivery is the probe. An operator asking for a
// redelivery, or a fixed Secret or spec, says the target may work now; waiting out a cooldown of up to two
// minutes would only delay it.
func (b *breaker) probeNow(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures >= breakerThreshold && !b.probing {
		b.openUntil = now
	}
}

// open reports whether deliveries are held back.
func (b *breaker) open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures >= breakerThreshold
}
