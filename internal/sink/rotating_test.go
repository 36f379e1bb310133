package sink_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cardplane/cardplane/internal/sink"
)

// TestRotatingPicksUpANewToken: the destination's token is rotated; the sink rebuilt from the new Secret
// value replaces the old one and deliveries go on.
func TestRotatingPicksUpANewToken(t *testing.T) {
	var token atomic.Value
	token.Store("old")
	var got received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token.Load().(string) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		got.add("uid-card-0", r.Header.Get("webhook-id"))
	}))
	defer srv.Close()
	r := sink.NewRotating(newWebhook(t, srv.URL, sink.HTTP{BearerToken: "old"}))
	defer r.Close()
	evs := events(1, 4)
	deliver(t, r, evs[:2], nil)
	token.Store("new")
	if err := r.Send(context.Background(), evs[2]); !sink.Permanent(err) {
		t.Fatalf("old token after rotation: %v, want a permanent 401", err)
	}
	r.Replace(newWebhook(t, srv.URL, sink.HTTP{BearerToken: "new"}))
	deliver(t, r, evs[2:], nil)
	got.check(t, evs)
}

// slowSink is a sink whose Send waits for release, recording whether it was closed before a Send returned.
type slowSink struct {
	release        chan struct{}
	running        atomic.Int32
	closed         atomic.Bool
	closedTooEarly atomic.Bool
}

func (s *slowSink) Send(ctx context.Context, _ sink.Event) error {
	s.running.Add(1)
	defer s.running.Add(-1)
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.closed.Load() {
		s.closedTooEarly.Store(true)
	}
	return nil
}

func (s *slowSink) Close() error {
	s.closed.Store(true)
	return nil
}

// TestRotatingClosesTheOldSinkAfterItsSends: Replace does not wait, the Send running on the old sink
// finishes on it, and only then is the old sink closed; Close waits for everything.
func TestRotatingClosesTheOldSinkAfterItsSends(t *testing.T) {
	old, next := &slowSink{release: make(chan struct{})}, &slowSink{release: make(chan struct{})}
	close(next.release)
	r := sink.NewRotating(old)
	done := make(chan error)
	go func() { done <- r.Send(context.Background(), events(1, 1)[0]) }()
	for old.running.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	r.Replace(next)
	if err := r.Send(context.Background(), events(1, 1)[0]); err != nil {
		t.Fatalf("Send on the new sink: %v", err)
	}
	if old.closed.Load() {
		t.Fatal("old sink closed while a Send ran on it")
	}
	close(old.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if !old.closed.Load() || !next.closed.Load() || old.closedTooEarly.Load() {
		t.Errorf("closed: old %t (too early %t), new %t", old.closed.Load(), old.closedTooEarly.Load(), next.closed.Load())
	}
	if err := r.Send(context.Background(), events(1, 1)[0]); !errors.Is(err, sink.ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
}

// lingeringSink is a sink whose Close waits for closeRelease (it settles what is still in flight) and which
// counts its Sends.
type lingeringSink struct {
	closeRelease chan struct{}
	sends        atomic.Int32
	closed       atomic.Bool
}

func (s *lingeringSink) Send(context.Context, sink.Event) error { s.sends.Add(1); return nil }
func (s *lingeringSink) Lingers()                               {}
func (s *lingeringSink) Close() error {
	<-s.closeRelease
	s.closed.Store(true)
	return nil
}

// TestRotatingWaitsForALingeringSinkToSettle: a Kafka record or NATS message whose Send gave up may still be
// in flight on the old transport. The sink replacing it used to send at once, so a later state of the same
// card could land first. It now sends only once the old sink is closed (its Close settles what it sent).
func TestRotatingWaitsForALingeringSinkToSettle(t *testing.T) {
	old := &lingeringSink{closeRelease: make(chan struct{})}
	next := &lingeringSink{closeRelease: make(chan struct{})}
	close(next.closeRelease)
	r := sink.NewRotating(old)
	if err := r.Send(context.Background(), events(1, 1)[0]); err != nil {
		t.Fatal(err)
	}
	r.Replace(next)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := r.Send(ctx, events(1, 2)[1]); err == nil || sink.Permanent(err) || next.sends.Load() != 0 {
		t.Fatalf("Send while the old sink settles: %v, new sink sent %d; want a retryable error and nothing sent", err, next.sends.Load())
	}
	close(old.closeRelease)
	if err := r.Send(context.Background(), events(1, 2)[1]); err != nil || next.sends.Load() != 1 || !old.closed.Load() {
		t.Fatalf("Send once the old sink closed: %v, new sink sent %d, old closed %t", err, next.sends.Load(), old.closed.Load())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}
