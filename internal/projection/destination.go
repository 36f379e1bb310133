package projection

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/sink"
	"github.com/cardplane/cardplane/internal/sinkconfig"
	"github.com/cardplane/cardplane/internal/text"
)

// destTarget is one destination of a WebhookEndpoint: a Standard Webhooks sink signed with the endpoint's
// Secret and authenticated with its http options. A state given up on marks the object ProjectionFailed until
// a later state is delivered.
type destTarget struct {
	q        *destQueue
	endpoint types.NamespacedName
	dest     string

	mu     sync.Mutex
	out    *sink.Rotating // nil until first built
	closed bool           // the destination was removed: nothing is built any more
	// spec is the endpoint ("<uid>/<generation>": the destination, its timeout, the address policy) last looked
	// at, and checked when; built is what out was built from ("<spec>/<fingerprint of its Secrets>"), "" after a
	// change that could not be built. lastErr is the last build's configuration error: it is answered until
	// the next check, so a destination waiting for a Secret costs its queued states no Secret reads.
	spec, built string
	checked     time.Time
	lastErr     error
}

func newDestinationQueue(d *Dispatcher, endpoint types.NamespacedName, dest string, start [kinds]uint64) *destQueue {
	q := newDestQueue(d, endpoint.String()+"/"+dest, destinationMetrics(endpoint, dest), start)
	q.t = &destTarget{q: q, endpoint: endpoint, dest: dest}
	return q
}

func (t *destTarget) retry() (retryPolicy, bool) {
	_, dest := t.q.d.destination(t.endpoint, t.dest)
	if dest == nil {
		return retryPolicy{}, false
	}
	maxAttempts, minB, maxB := policy(dest.Retry)
	return retryPolicy{maxAttempts: maxAttempts, minB: minB, maxB: maxB}, true
}

// prepare builds the event of obj's current state for the destination.
func (t *destTarget) prepare(ctx context.Context, k kind, obj client.Object) (func(context.Context) error, error) {
	d := t.q.d
	ep, dest := d.destination(t.endpoint, t.dest)
	if dest == nil {
		return nil, fmt.Errorf("destination %s was removed", t.q.name)
	}
	typ := eventTypeOf(k, obj, dest.EventTypes)
	if !wants(dest.EventTypes, typ) {
		return nil, nil // the state changed since it was queued (a decision recorded): not for this destination
	}
	out, err := t.transport(ctx, ep, dest)
	if err != nil {
		return nil, err
	}
	data, err := encode(obj)
	if err != nil {
		return nil, err
	}
	ev := sink.Event{ID: eventID(obj), Type: string(typ), Source: sourceOf(k, obj), Subject: obj.GetName(),
		Time: d.Now().UTC(), Data: data}
	return func(ctx context.Context) error { return out.Send(ctx, ev) }, nil
}

// transport is the destination's sink, built on first use and again when the endpoint's spec or one of the
// Secrets changed (looked at every recheck interval at most): sends in flight finish on the old one
// (sink.Rotating), so a rotated key, token or certificate is picked up without a restart. A new transport ends
// the circuit breaker's cooldown: it may cure what opened the circuit.
func (t *destTarget) transport(ctx context.Context, ep *cardsv1alpha1.WebhookEndpoint, dest *cardsv1alpha1.Destination) (sink.Sink, error) {
	d := t.q.d
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("destination %s was removed", t.q.name)
	}
	now := d.Now()
	spec := fmt.Sprintf("%s/%d", ep.UID, ep.Generation)
	if t.spec == spec && now.Sub(t.checked) < d.SinkPolicy.RecheckInterval {
		if t.out != nil {
			return t.out, nil
		}
		if t.lastErr != nil {
			return nil, t.lastErr
		}
	}
	fp, err := sinkconfig.Fingerprint(ctx, d.Secrets, ep.Namespace, sinkconfig.Destination(dest))
	if err != nil {
		return nil, err
	}
	if t.out != nil && t.built == spec+"/"+fp {
		t.spec, t.checked = spec, now
		return t.out, nil
	}
	s, err := d.Network.buildDestination(ctx, d.Secrets, ep, dest)
	if err != nil {
		if !notConfigured(err) {
			return nil, err
		}
		t.spec, t.checked, t.lastErr, t.built = spec, now, err, ""
		if t.out != nil {
			// A change that cannot be built (a rotated Secret without its key) keeps the last good transport in
			// use, as a CardEventSink keeps its last good configuration; DestinationsReady says what is wrong.
			// built is cleared, so the next check builds again whatever the Secrets hold then.
			return t.out, nil
		}
		return nil, err
	}
	if t.out == nil {
		t.out = sink.NewRotating(s)
	} else {
		t.out.Replace(s)
	}
	t.spec, t.built, t.checked, t.lastErr = spec, spec+"/"+fp, now, nil
	t.q.breaker.probeNow(now)
	return t.out, nil
}

// notConfigured reports whether err is a target whose transport cannot be built as configured (a Secret
// missing, unlabelled or without its key, a CA that does not parse): the spec or a Secret must change.
func notConfigured(err error) bool {
	var ce *sinkconfig.ConfigError
	return errors.As(err, &ce)
}

// runDestinationRecheck looks, every recheck interval, at the destinations whose circuit is open: one whose
// spec or Secrets changed gets a new transport, which ends the cooldown. Their workers wait out the cooldown,
// so nothing else would look before it ends; a destination fixed by a new Secret (a CA, a client certificate)
// gets its backlog within seconds, not after a cooldown of up to two minutes.
func (d *Dispatcher) runDestinationRecheck(ctx context.Context) {
	ticker := time.NewTicker(d.SinkPolicy.RecheckInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		d.mu.Lock()
		var open []*destQueue
		for _, e := range d.endpoints {
			for _, q := range e.queues {
				if q.breaker.open() {
					open = append(open, q)
				}
			}
		}
		d.mu.Unlock()
		for _, q := range open {
			t := q.t.(*destTarget)
			if ep, dest := d.destination(t.endpoint, t.dest); dest != nil {
				_, _ = t.transport(q.ctx, ep, dest)
			}
		}
	}
}

// buildDestination builds dest's sink: its Secrets (read with r, from the endpoint's namespace), its timeout,
// and the endpoint's address policy.
func (n *Network) buildDestination(ctx context.Context, r client.Reader, ep *cardsv1alpha1.WebhookEndpoint, dest *cardsv1alpha1.Destination) (sink.Sink, error) {
	allowed, err := endpointconfig.AllowedCIDRs(ep)
	if err != nil {
		return nil, err
	}
	s, err := sinkconfig.Build(ctx, r, ep.Namespace, sinkconfig.Destination(dest), sinkconfig.Options{Dial: n.dial(allowed),
		RootCAs: n.RootCAs, Timeout: destinationTimeout(dest)})
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", dest.Name, err)
	}
	return s, nil
}

// stopDestination shuts a destination's queue down and releases its connections. It is called under the
// dispatcher's lock, so the release runs apart: it waits for a transport being built (Secret reads).
func stopDestination(q *destQueue) {
	q.shutDown()
	if t, ok := q.t.(*destTarget); ok {
		go t.close()
	}
}

// close releases the destination's connections once its sends have returned; nothing is built after it.
func (t *destTarget) close() {
	t.mu.Lock()
	out := t.out
	t.out, t.closed = nil, true
	t.mu.Unlock()
	if out != nil {
		_ = out.Close()
	}
}

// destinationTimeout is the timeout of one delivery to dest (default 10 s, at most 30 s).
func destinationTimeout(dest *cardsv1alpha1.Destination) time.Duration {
	if dest.Timeout != nil && dest.Timeout.Duration > 0 {
		return min(dest.Timeout.Duration, maxTimeout)
	}
	return defaultTimeout
}

// eventID is the ID of obj's current state, the same for every attempt and every target.
func eventID(obj client.Object) string { return fmt.Sprintf("%s-%d", obj.GetUID(), sequenceOf(obj)) }

func (t *destTarget) failedPrefix() string { return "destination " + t.dest + ":" }

// succeeded clears the ProjectionFailed condition this destination set on an earlier state.
func (t *destTarget) succeeded(key objectKey, obj client.Object) {
	if c := apimeta.FindStatusCondition(*conditionsOf(obj), cardsv1alpha1.ConditionProjectionFailed); c != nil &&
		c.Status == metav1.ConditionTrue && strings.HasPrefix(c.Message, t.failedPrefix()) {
		t.q.setCondition(key, metav1.Condition{Type: cardsv1alpha1.ConditionProjectionFailed, Status: metav1.ConditionFalse,
			Reason: "Delivered", Message: "Destination " + t.dest + " received a later state"})
	}
}

// gaveUp marks the object ProjectionFailed, with a Warning Event: the redeliver annotation sends it again.
func (t *destTarget) gaveUp(key objectKey, obj client.Object, at attemptState, err error) {
	msg := text.Clip(err.Error(), 512)
	t.q.d.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, cardsv1alpha1.EventProjectionFailed, "Deliver",
		"gave up delivering state %d to destination %s after %d attempts: %s", at.seq, t.dest, at.n, msg)
	t.q.setCondition(key, metav1.Condition{Type: cardsv1alpha1.ConditionProjectionFailed, Status: metav1.ConditionTrue,
		Reason: "RetryBudgetExhausted", Message: text.Clip(fmt.Sprintf("%s state %d not delivered after %d attempts (annotate with %s to retry): %s",
			t.failedPrefix(), at.seq, at.n, cardsv1alpha1.AnnotationRedeliver, msg), 1024)})
}
