package projection

import (
	"context"
	"testing"
	"time"
)

func TestBreakerOpensProbesAndCloses(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { return now }
	ctx := context.Background()
	var b breaker
	for i := range breakerThreshold {
		if probe, ok := b.allow(ctx, clock); !ok || probe {
			t.Fatalf("attempt %d: allow = %v, %v before the threshold", i, probe, ok)
		}
		b.done(false, false, now)
	}
	if !b.open() {
		t.Fatal("not open after the threshold of failures")
	}
	// While open nothing passes: allow waits (until ctx ends here).
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, ok := b.allow(short, clock); ok {
		t.Fatal("allowed a delivery while open")
	}
	// After the cooldown one probe passes; a failed probe doubles the cooldown.
	now = now.Add(breakerMinCooldown)
	if probe, ok := b.allow(ctx, clock); !ok || !probe {
		t.Fatalf("after the cooldown allow = %v, %v, want the probe", probe, ok)
	}
	b.done(true, false, now)
	if b.cooldown != 2*breakerMinCooldown || !b.openUntil.Equal(now.Add(2*breakerMinCooldown)) {
		t.Errorf("after a failed probe cooldown = %s until %s", b.cooldown, b.openUntil.Sub(now))
	}
	for range 10 {
		b.done(true, false, now)
	}
	if b.cooldown != breakerMaxCooldown {
		t.Errorf("cooldown = %s, want capped at %s", b.cooldown, breakerMaxCooldown)
	}
	// A successful probe closes it.
	now = now.Add(breakerMaxCooldown)
	probe, _ := b.allow(ctx, clock)
	b.done(probe, true, now)
	if b.open() || b.cooldown != 0 {
		t.Error("still open after a successful probe")
	}
	if probe, ok := b.allow(ctx, clock); !ok || probe {
		t.Errorf("closed: allow = %v, %v", probe, ok)
	}
}

// An operator's redelivery request ends the cooldown: the next delivery is the probe, at once. Before, a
// redeliver during a long cooldown waited it out (up to two minutes).
func TestARedeliveryRequestProbesAtOnce(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { return now }
	var b breaker
	for range breakerThreshold {
		b.done(false, false, now)
	}
	for range 4 { // a long-dead destination: the cooldown has grown
		b.done(true, false, now)
	}
	b.probeNow(now)
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if probe, ok := b.allow(short, clock); !ok || !probe {
		t.Fatalf("after probeNow allow = %v, %v, want the probe at once", probe, ok)
	}
	b.probeNow(now) // a second request while the probe runs changes nothing
	if _, ok := b.allow(short, clock); ok {
		t.Error("a second delivery passed while the probe was out")
	}
}

// A worker already waiting out a long cooldown sees probeNow within breakerWake: a destination fixed by a new
// Secret is probed by the workers holding its backlog, not after up to two minutes. Before, such a worker
// slept until the cooldown's end.
func TestAWaitingWorkerSeesProbeNow(t *testing.T) {
	var b breaker
	now := time.Now()
	for range breakerThreshold {
		b.done(false, false, now)
	}
	for range 4 {
		b.done(true, false, now) // the cooldown is now 80 s
	}
	got := make(chan time.Time, 1)
	go func() {
		if probe, ok := b.allow(context.Background(), time.Now); ok && probe {
			got <- time.Now()
		}
	}()
	time.Sleep(50 * time.Millisecond) // the worker is waiting
	asked := time.Now()
	b.probeNow(asked)
	select {
	case at := <-got:
		t.Logf("probed %s after probeNow", at.Sub(asked).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("a worker waiting out the cooldown did not probe within 5 s of probeNow")
	}
}
