package projection

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/eventfilter"
	"github.com/cardplane/cardplane/internal/sink"
	"github.com/cardplane/cardplane/internal/sinkconfig"
)

// +kubebuilder:rbac:groups=cards.cardplane.io,resources=cardeventsinks,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=cards.cardplane.io,resources=cardeventsinks/status,verbs=get;patch

// subscription is one CardEventSink as the dispatcher holds it: the last good configuration (selector, event
// types, filter, transport), its queue, and what its status reports. A change that does not compile, or a
// Secret that cannot be read, leaves the last good configuration in force and says why on Ready, as a bad
// rule-set version does; a sink that was never good has no workers, so its states wait, none given up.
type subscription struct {
	key types.NamespacedName
	obj *cardsv1alpha1.CardEventSink // as the informer last saw it
	q   *destQueue

	// Under Dispatcher.mu:
	good        *sinkConfig // nil until the first good configuration
	notReady    *metav1.Condition
	fingerprint [2]string // of the transport and of the dead-letter sink, as built
	deadLetters []cardsv1alpha1.DeadLetter
	replay      *cardsv1alpha1.ReplayStatus
	filterError string
	written     time.Time
	closed      bool // the sink was deleted or replaced: a transport built now is closed at once
	// acted holds the annotation values last acted on (replay-from, resend-dead-letters).
	acted map[string]string

	delivered, failed, filtered, deadLettered atomic.Int64
	// lettered is len(deadLetters) > 0, read without the lock: a delivery looks for a letter to settle only then.
	lettered atomic.Bool
}

// sinkConfig is one good configuration of a subscription.
type sinkConfig struct {
	generation  int64
	selector    labels.Selector
	types       []cardsv1alpha1.DestinationEventType
	filter      *eventfilter.Filter
	retry       retryPolicy
	timeout     time.Duration
	maxInFlight int
	out, dlq    *sink.Rotating // dlq nil: none
}

// wants reports whether the configuration takes events of type t.
func (c *sinkConfig) wants(t cardsv1alpha1.DestinationEventType) bool { return wants(c.types, t) }

// eventType is the type obj's current state is delivered as.
func (c *sinkConfig) eventType(k kind, obj client.Object) cardsv1alpha1.DestinationEventType {
	return eventTypeOf(k, obj, c.types)
}

// SinkPolicy is how the dispatcher builds the CardEventSinks' transports.
type SinkPolicy struct {
	// AllowedCIDRs opens these special-purpose ranges to every sink (a cluster's Kafka or NATS on private
	// addresses): --sink-allowed-cidrs. Loopback opens only with the Network's AllowLoopback.
	AllowedCIDRs []netip.Prefix
	// RecheckInterval is how often a sink's Secrets are compared with what it was built from, so a rotated
	// Secret is picked up (default 10 s; each check reads only Secret metadata).
	RecheckInterval time.Duration
}

// onSink creates, updates and removes a CardEventSink's subscription. Its queue exists from the first sight,
// so the objects listed at start find it; building the transport (Secrets, connections) happens off the
// informer, in runSinkConfig.
func (d *Dispatcher) onSink(o any, deleted bool) {
	cs, ok := objectOf(o).(*cardsv1alpha1.CardEventSink)
	if !ok {
		return
	}
	key := client.ObjectKeyFromObject(cs)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	s := d.sinks[key.Namespace][key.Name]
	if deleted {
		if s != nil {
			s.q.shutDown()
			s.close()
			delete(d.sinks[key.Namespace], key.Name)
			if len(d.sinks[key.Namespace]) == 0 {
				delete(d.sinks, key.Namespace)
			}
		}
		return
	}
	if s == nil || s.obj.UID != cs.UID {
		if s != nil {
			s.q.shutDown()
			s.close()
		}
		s = d.newSubscription(cs)
		if d.sinks[key.Namespace] == nil {
			d.sinks[key.Namespace] = map[string]*subscription{}
		}
		d.sinks[key.Namespace][key.Name] = s
	}
	s.obj = cs
	d.sinkConfig.Add(key)
}

// newSubscription makes the subscription of a sink first seen, and its queue, which starts from the sink's
// checkpoint; a sink without one starts from now (its own resourceVersion, which every later change of a card
// or transaction exceeds: one etcd revision orders them all), or from the beginning when it asks for backfill.
func (d *Dispatcher) newSubscription(cs *cardsv1alpha1.CardEventSink) *subscription {
	key := client.ObjectKeyFromObject(cs)
	s := &subscription{key: key, obj: cs, acted: map[string]string{}}
	start := checkpointFrom(cs.Status.Checkpoint)
	fresh := cs.Status.Checkpoint == nil
	if fresh && !cs.Spec.Backfill {
		start = [kinds]uint64{resourceVersion(cs), resourceVersion(cs)}
	}
	s.q = newDestQueue(d, "cardeventsink "+key.String(), sinkMetrics(key), start)
	s.q.t = &sinkTarget{d: d, s: s}
	s.setLetters(slices.Clone(cs.Status.DeadLetters))
	s.replay = cs.Status.Replay.DeepCopy()
	s.delivered.Store(cs.Status.Delivered)
	s.failed.Store(cs.Status.Failed)
	s.filtered.Store(cs.Status.Filtered)
	s.deadLettered.Store(cs.Status.DeadLettered)
	// A replay or resend annotation present at first sight was not acted on yet (acting removes it): the
	// empty acted map makes runSinkConfig act on it.
	if fresh {
		s.q.backfilling.Store(true) // what it is owed is queued once it is configured (backfillSink)
	}
	return s
}

// close releases the subscription's transports (under Dispatcher.mu). They close in the background: a
// transport settles what it sent before it closes, up to its timeout, and the lock is not held that long.
func (s *subscription) close() {
	s.closed = true
	if c := s.good; c != nil {
		go c.close()
	}
}

// close releases the configuration's transports.
func (c *sinkConfig) close() {
	_ = c.out.Close()
	if c.dlq != nil {
		_ = c.dlq.Close()
	}
}

// checkpointFrom parses a checkpoint a status holds (0 per kind: none).
func checkpointFrom(cp *cardsv1alpha1.DeliveryCheckpoint) [kinds]uint64 {
	var out [kinds]uint64
	if cp != nil {
		out[kindCard], _ = strconv.ParseUint(cp.Cards, 10, 64)
		out[kindTransaction], _ = strconv.ParseUint(cp.Transactions, 10, 64)
	}
	return out
}

// sinkQueuesFor returns the queues of the namespace's subscriptions that take k's events of a card with
// cardLabels. The filter is not evaluated here but on the state delivered: a queue sends the latest state.
func (d *Dispatcher) sinkQueuesFor(namespace string, k kind, obj client.Object, cardLabels map[string]string) []*destQueue {
	d.mu.Lock()
	defer d.mu.Unlock()
	var qs []*destQueue
	for _, s := range d.sinks[namespace] {
		c := s.good
		if c == nil {
			// Not built yet: queue it; the worker that starts with the first good configuration decides.
			qs = append(qs, s.q)
			continue
		}
		if c.wants(c.eventType(k, obj)) && c.selector.Matches(labels.Set(cardLabels)) {
			qs = append(qs, s.q)
		}
	}
	return qs
}

// subscription returns the subscription of key, nil once it is gone.
func (d *Dispatcher) subscription(key types.NamespacedName) *subscription {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sinks[key.Namespace][key.Name]
}

// runSinkConfig builds the subscriptions' transports and acts on their annotations, and checks each again
// every RecheckInterval for a rotated Secret.
func (d *Dispatcher) runSinkConfig(ctx context.Context) {
	for {
		key, shutdown := d.sinkConfig.Get()
		if shutdown {
			return
		}
		if s := d.subscription(key); s != nil {
			d.configure(ctx, s)
			d.actOnAnnotations(ctx, s)
			d.sinkConfig.AddAfter(key, d.SinkPolicy.RecheckInterval)
		}
		d.sinkConfig.Done(key)
	}
}

// configure compiles the sink's spec and builds its transports when the spec or a Secret it names changed.
func (d *Dispatcher) configure(ctx context.Context, s *subscription) {
	d.mu.Lock()
	cs, good := s.obj, s.good
	d.mu.Unlock()
	spec := &cs.Spec
	fp, err := sinkconfig.Fingerprint(ctx, d.Secrets, cs.Namespace, &spec.Sink)
	var dlqFP string
	if err == nil && spec.Delivery != nil && spec.Delivery.DeadLetterSink != nil {
		dlqFP, err = sinkconfig.Fingerprint(ctx, d.Secrets, cs.Namespace, spec.Delivery.DeadLetterSink)
	}
	if err != nil {
		d.setNotReady(s, cs, "SecretsUnreadable", err.Error())
		return
	}
	d.mu.Lock()
	unchanged := good != nil && good.generation == cs.Generation && s.fingerprint == [2]string{fp, dlqFP}
	d.mu.Unlock()
	if unchanged {
		return
	}
	c, reason, err := d.compile(ctx, cs)
	if err != nil {
		d.setNotReady(s, cs, reason, err.Error())
		return
	}
	d.mu.Lock()
	if s.closed {
		// Deleted or replaced while this was built (a first dial can take seconds): nothing may keep it open.
		d.mu.Unlock()
		c.close()
		return
	}
	var dropped *sink.Rotating
	if good != nil {
		// Swapped in: sends in flight finish on the old transport, which closes after them.
		good.out.Replace(c.out)
		c.out = good.out
		switch {
		case good.dlq != nil && c.dlq != nil:
			good.dlq.Replace(c.dlq)
			c.dlq = good.dlq
		case good.dlq != nil:
			dropped = good.dlq
		}
	}
	s.good, s.fingerprint, s.notReady = c, [2]string{fp, dlqFP}, nil
	d.mu.Unlock()
	if dropped != nil {
		// Its Close waits for the sends in flight, up to their timeout: never under the dispatcher's lock.
		go func() { _ = dropped.Close() }()
	}
	s.q.breaker.probeNow(d.Now()) // a new configuration or Secret may cure what opened the circuit
	s.q.resize(c.maxInFlight)
	logf.FromContext(ctx).Info("CardEventSink configured", "cardEventSink", s.key, "generation", cs.Generation, "sink", sinkconfig.Kind(&spec.Sink))
	if s.q.backfilling.Load() {
		go d.backfillSink(s)
	}
}

// compile makes a configuration of the sink's spec: the reason and error say what is wrong with it.
func (d *Dispatcher) compile(ctx context.Context, cs *cardsv1alpha1.CardEventSink) (*sinkConfig, string, error) {
	spec := &cs.Spec
	c := &sinkConfig{generation: cs.Generation, selector: labels.Everything(), types: spec.EventTypes}
	if spec.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(spec.Selector)
		if err != nil {
			return nil, "InvalidSelector", fmt.Errorf("selector: %w", err)
		}
		c.selector = sel
	}
	if spec.Filter != "" {
		f, err := eventfilter.Compile(spec.Filter)
		if err != nil {
			return nil, "InvalidFilter", err
		}
		c.filter = f
	}
	c.retry, c.timeout, c.maxInFlight = sinkDelivery(spec.Delivery)
	opts := sinkconfig.Options{Dial: d.Network.dial(d.SinkPolicy.AllowedCIDRs), RootCAs: d.Network.RootCAs, Timeout: c.timeout}
	out, err := sinkconfig.Build(ctx, d.Secrets, cs.Namespace, &spec.Sink, opts)
	if err != nil {
		return nil, configReason(err), fmt.Errorf("sink: %w", err)
	}
	c.out = sink.NewRotating(out)
	if spec.Delivery != nil && spec.Delivery.DeadLetterSink != nil {
		dlq, err := sinkconfig.Build(ctx, d.Secrets, cs.Namespace, spec.Delivery.DeadLetterSink, opts)
		if err != nil {
			_ = out.Close()
			return nil, configReason(err), fmt.Errorf("deadLetterSink: %w", err)
		}
		c.dlq = sink.NewRotating(dlq)
	}
	return c, "", nil
}

func configReason(err error) string {
	if ce := (*sinkconfig.ConfigError)(nil); errors.As(err, &ce) && ce.Reason != "" {
		return ce.Reason
	}
	return "InvalidSink"
}

// sinkDelivery reads a sink's delivery policy with its defaults. A sink gives a state up at once on an error
// retrying cannot cure (a 400, a record too large): it is dead-lettered, not retried for hours.
func sinkDelivery(p *cardsv1alpha1.DeliveryPolicy) (retryPolicy, time.Duration, int) {
	r := retryPolicy{maxAttempts: defaultMaxAttempts, minB: defaultMinBackoff, maxB: defaultMaxBackoff, permanentGivesUp: true}
	timeout, inFlight := defaultTimeout, defaultMaxInFlight
	if p == nil {
		return r, timeout, inFlight
	}
	r.maxAttempts, r.minB, r.maxB = policy(p.Retry)
	if p.Timeout != nil && p.Timeout.Duration > 0 {
		timeout = min(p.Timeout.Duration, maxTimeout)
	}
	if p.MaxInFlight > 0 {
		inFlight = int(p.MaxInFlight)
	}
	return r, timeout, inFlight
}

// setNotReady records why the sink's current spec is not in force.
func (d *Dispatcher) setNotReady(s *subscription, cs *cardsv1alpha1.CardEventSink, reason, msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s.good != nil {
		msg += fmt.Sprintf("; generation %d stays in force", s.good.generation)
	}
	s.notReady = &metav1.Condition{Type: conditionReady, Status: metav1.ConditionFalse, Reason: reason,
		Message: msg, ObservedGeneration: cs.Generation}
}

const conditionReady = "Ready"

// readyCondition is the sink's Ready condition now.
func (s *subscription) readyCondition() metav1.Condition {
	if s.notReady != nil {
		return *s.notReady
	}
	if s.good == nil {
		return metav1.Condition{Type: conditionReady, Status: metav1.ConditionUnknown, Reason: "Configuring",
			Message: "building the sink", ObservedGeneration: s.obj.Generation}
	}
	return metav1.Condition{Type: conditionReady, Status: metav1.ConditionTrue, Reason: "Configured",
		Message: "the sink is configured", ObservedGeneration: s.good.generation}
}

// conditions are the sink's conditions with Ready set, its transition time kept when it did not change.
func (s *subscription) conditions() []metav1.Condition {
	conds := slices.Clone(s.obj.Status.Conditions)
	apimeta.SetStatusCondition(&conds, s.readyCondition())
	return conds
}
