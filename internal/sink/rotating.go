package sink

import (
	"context"
	"fmt"
	"sync"
)

// Rotating is a Sink whose implementation can be replaced while it is in use: when a Secret the sink was
// built from changes (a rotated token, a renewed client certificate), the caller builds a new sink from the
// new values and calls Replace. Sends already running finish on the old sink, which is closed once they have
// returned; new Sends go to the new one. Building a sink is cheap (no connection is made until a Send), so
// rebuilding on every change is the way to pick up rotation.
type Rotating struct {
	mu     sync.Mutex
	cur    *generation
	closed bool
	// retired counts old sinks still closing, so Close can wait for them.
	retired sync.WaitGroup
}

// generation is one sink and the Sends running on it.
type generation struct {
	sink    Sink
	running sync.WaitGroup
	// after, when set, is closed once the generations before this one are closed; its Sends wait for it (see
	// Lingering).
	after <-chan struct{}
}

// Lingering is implemented by a sink whose Send can return before what it sent is settled: a Kafka record or
// NATS message whose ack a Send gave up waiting for may still be written. Its Close settles them, up to its
// timeout. A Rotating sends nothing on the sink that replaces it until it is closed, so a later state of an
// object cannot overtake an earlier one still in flight on the old transport. (An HTTP Send that returned
// left nothing behind: the sink after an HTTP one sends at once.)
type Lingering interface {
	Sink
	Lingers()
}

// NewRotating wraps s.
func NewRotating(s Sink) *Rotating { return &Rotating{cur: &generation{sink: s}} }

// Send sends ev with the current sink.
func (r *Rotating) Send(ctx context.Context, ev Event) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return retryable(ErrClosed)
	}
	g := r.cur
	g.running.Add(1)
	r.mu.Unlock()
	defer g.running.Done()
	if g.after != nil {
		select {
		case <-g.after:
		case <-ctx.Done():
			return retryable(fmt.Errorf("the previous transport is still settling what it sent: %w", ctx.Err()))
		}
	}
	return g.sink.Send(ctx, ev)
}

// Replace makes s the current sink and closes the previous one in the background, once its Sends have
// returned. It does not wait: a reconcile calling it is not held up by a slow destination. After a Lingering
// sink, Sends on s wait until it is closed.
func (r *Rotating) Replace(s Sink) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = s.Close()
		return
	}
	old := r.cur
	next := &generation{sink: s}
	_, lingers := old.sink.(Lingering)
	var closed chan struct{}
	if lingers || old.after != nil {
		closed = make(chan struct{})
		next.after = closed
	}
	r.cur = next
	r.retired.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.retired.Done()
		old.running.Wait()
		_ = old.sink.Close()
		if closed != nil {
			if old.after != nil {
				<-old.after
			}
			close(closed)
		}
	}()
}

// Close waits for running Sends, closes the current sink and waits for the retired ones to close.
func (r *Rotating) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	g := r.cur
	r.mu.Unlock()
	g.running.Wait()
	err := g.sink.Close()
	r.retired.Wait()
	return err
}
