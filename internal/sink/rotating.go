package sink

import (
	"context"
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
	return g.sink.Send(ctx, ev)
}

// Replace makes s the current sink and closes the previous one in the background, once its Sends have
// returned. It does not wait: a reconcile calling it is not held up by a slow destination.
func (r *Rotating) Replace(s Sink) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = s.Close()
		return
	}
	old := r.cur
	r.cur = &generation{sink: s}
	r.retired.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.retired.Done()
		old.running.Wait()
		_ = old.sink.Close()
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
