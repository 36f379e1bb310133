package projection

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/eventfilter"
	"github.com/cardplane/cardplane/internal/sink"
	"github.com/cardplane/cardplane/internal/text"
)

var (
	sinkDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cardplane_sink_deliveries_total",
		Help: "Deliveries of Card and CardTransaction states to CardEventSinks, by result (delivered, failed, gave_up).",
	}, []string{"card_event_sink", "result"})
	sinkDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cardplane_sink_delivery_duration_seconds",
		Help:    "Duration of one delivery to a CardEventSink, successful or not.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"card_event_sink"})
	sinkPending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cardplane_sink_pending",
		Help: "Objects whose latest state waits to be delivered to a CardEventSink.",
	}, []string{"card_event_sink"})
	sinkLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cardplane_sink_lag_seconds",
		Help: "Age of the oldest state waiting to be delivered to a CardEventSink (0 when none waits).",
	}, []string{"card_event_sink"})
	sinkCircuit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cardplane_sink_circuit_open",
		Help: "1 while a CardEventSink's circuit breaker holds its deliveries back.",
	}, []string{"card_event_sink"})
	sinkFiltered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cardplane_sink_filtered_total",
		Help: "States a CardEventSink's filter left out, by result (false, error).",
	}, []string{"card_event_sink", "result"})
)

func init() {
	metrics.Registry.MustRegister(sinkDeliveries, sinkDuration, sinkPending, sinkLag, sinkCircuit, sinkFiltered)
}

func sinkMetrics(key types.NamespacedName) queueMetrics {
	labels := prometheus.Labels{"card_event_sink": key.String()}
	m := newQueueMetrics(labels, sinkDeliveries, sinkDuration, sinkPending, sinkLag, sinkCircuit)
	forget := m.forget
	m.forget = func() { forget(); sinkFiltered.DeletePartialMatch(labels) }
	return m
}

// sinkTarget is one CardEventSink.
type sinkTarget struct {
	d *Dispatcher
	s *subscription
}

func (t *sinkTarget) config() *sinkConfig {
	t.d.mu.Lock()
	defer t.d.mu.Unlock()
	if t.d.sinks[t.s.key.Namespace][t.s.key.Name] != t.s {
		return nil
	}
	return t.s.good
}

func (t *sinkTarget) retry() (retryPolicy, bool) {
	c := t.config()
	if c == nil {
		return retryPolicy{}, false
	}
	return c.retry, true
}

// prepare decides whether the sink takes obj's current state (event type, the card's labels, the filter) and
// builds the event.
func (t *sinkTarget) prepare(_ context.Context, k kind, obj client.Object) (func(context.Context) error, error) {
	c := t.config()
	if c == nil {
		return nil, fmt.Errorf("cardeventsink %s was removed", t.s.key)
	}
	typ := c.eventType(k, obj)
	info, known := t.d.cardOf(k, obj)
	if !c.wants(typ) || !known || !c.selector.Matches(labels.Set(info.labels)) {
		return nil, nil
	}
	data, err := encode(obj)
	if err != nil {
		return nil, err
	}
	if c.filter != nil && !t.admits(c.filter, data, typ) {
		return nil, nil
	}
	ev := sink.Event{ID: eventID(obj), Type: string(typ), Source: sourceOf(k, obj), Subject: obj.GetName(),
		Key: string(info.uid), Time: observedAt(obj, t.d.Now()), Data: data}
	return func(ctx context.Context) error {
		err := c.out.Send(ctx, ev)
		if err != nil {
			t.s.failed.Add(1)
		}
		return err
	}, nil
}

// admits evaluates the filter. A filter that fails on a state (a field it reads is absent) leaves the state
// out and says so in status.lastError: the app team asked for what matches, and this does not.
func (t *sinkTarget) admits(f *eventfilter.Filter, data []byte, typ cardsv1alpha1.DestinationEventType) bool {
	obj, err := eventfilter.Object(data)
	ok := false
	if err == nil {
		ok, err = f.Match(obj, string(typ))
	}
	if ok {
		return true
	}
	t.s.filtered.Add(1)
	result := "false"
	if err != nil {
		result = "error"
		t.d.mu.Lock()
		t.s.filterError = text.Clip(err.Error(), 512)
		t.d.mu.Unlock()
	}
	sinkFiltered.WithLabelValues(t.s.key.String(), result).Inc()
	return false
}

// sourceOf is the CloudEvents source of obj: its API path.
func sourceOf(k kind, obj client.Object) string {
	resource := "cards"
	if k == kindTransaction {
		resource = "cardtransactions"
	}
	return fmt.Sprintf("/apis/%s/namespaces/%s/%s/%s", cardsv1alpha1.GroupVersion.String(), obj.GetNamespace(), resource, obj.GetName())
}

// observedAt is when obj's current state was received.
func observedAt(obj client.Object, now time.Time) time.Time {
	var ev *cardsv1alpha1.ProviderEvent
	switch o := obj.(type) {
	case *cardsv1alpha1.Card:
		ev = o.Status.LastEvent
	case *cardsv1alpha1.CardTransaction:
		ev = o.Status.LastEvent
	}
	if ev != nil && ev.ReceivedAt != nil {
		return ev.ReceivedAt.UTC()
	}
	return now.UTC()
}

// succeeded counts a delivery; a dead letter of the object is settled by it (the sink has its latest state).
func (t *sinkTarget) succeeded(key objectKey, _ client.Object) {
	t.s.delivered.Add(1)
	if !t.s.lettered.Load() {
		return // the common case: no letter to settle, and the dispatcher's lock is not taken
	}
	t.d.mu.Lock()
	t.s.setLetters(t.s.withoutLetterOf(key))
	t.d.mu.Unlock()
}

// gaveUp dead-letters the state: listed in status.deadLetters, sent to the dead-letter sink when there is one,
// and a Warning Event on the CardEventSink.
func (t *sinkTarget) gaveUp(key objectKey, obj client.Object, at attemptState, err error) {
	t.s.deadLettered.Add(1)
	kindName := "Card"
	if key.kind == kindTransaction {
		kindName = "CardTransaction"
	}
	dl := cardsv1alpha1.DeadLetter{Kind: kindName, Name: key.Name, EventID: eventID(obj), StateSequence: at.seq,
		Attempts: at.n, Reason: text.Clip(err.Error(), 512), Time: ptrTime(t.d.Now())}
	if c := t.config(); c != nil && c.dlq != nil {
		dl.DeadLetterSink = "Delivered"
		if derr := t.sendDeadLetter(c, key.kind, obj, dl); derr != nil {
			dl.DeadLetterSink = "Failed"
			logf.FromContext(t.s.q.ctx).Info("The dead-letter sink did not take a state", "cardEventSink", t.s.key,
				"object", key.NamespacedName, "error", derr.Error())
		}
	}
	t.d.mu.Lock()
	letters := append(t.s.withoutLetterOf(key), dl) // a resend given up again is listed once
	t.s.setLetters(letters[max(0, len(letters)-maxDeadLetters):])
	cs := t.s.obj
	t.d.mu.Unlock()
	t.d.Recorder.Eventf(cs, obj, corev1.EventTypeWarning, "DeadLettered", "Deliver",
		"gave up delivering %s %s state %d after %d attempts: %s", kindName, key.Name, at.seq, at.n, dl.Reason)
}

// setLetters replaces the dead letters (under Dispatcher.mu).
func (s *subscription) setLetters(l []cardsv1alpha1.DeadLetter) {
	s.deadLetters = l
	s.lettered.Store(len(l) > 0)
}

// withoutLetterOf is the dead letters but those of key (under Dispatcher.mu). The list is copied, never
// changed in place: a status being written outside the lock may share it.
func (s *subscription) withoutLetterOf(key objectKey) []cardsv1alpha1.DeadLetter {
	return s.lettersBut(func(k objectKey) bool { return k == key })
}

// lettersBut is a copy of the dead letters without those of the objects drop names (under Dispatcher.mu).
func (s *subscription) lettersBut(drop func(objectKey) bool) []cardsv1alpha1.DeadLetter {
	if !slices.ContainsFunc(s.deadLetters, func(dl cardsv1alpha1.DeadLetter) bool { return drop(deadLetterKey(s.key.Namespace, dl)) }) {
		return s.deadLetters
	}
	kept := make([]cardsv1alpha1.DeadLetter, 0, len(s.deadLetters))
	for _, dl := range s.deadLetters {
		if !drop(deadLetterKey(s.key.Namespace, dl)) {
			kept = append(kept, dl)
		}
	}
	return kept
}

// maxDeadLetters is how many dead letters status keeps (the CRD's limit).
const maxDeadLetters = 100

// deadLetterEvent is the data of a dead-lettered delivery: the event as it was, and why it was given up.
type deadLetterEvent struct {
	CardEventSink string          `json:"cardEventSink"`
	Type          string          `json:"type"`
	Reason        string          `json:"reason"`
	Attempts      int32           `json:"attempts"`
	Data          json.RawMessage `json:"data"`
}

func (t *sinkTarget) sendDeadLetter(c *sinkConfig, k kind, obj client.Object, dl cardsv1alpha1.DeadLetter) error {
	data, err := encode(obj)
	if err != nil {
		return err
	}
	body, err := json.Marshal(deadLetterEvent{CardEventSink: t.s.key.String(), Type: string(c.eventType(k, obj)),
		Reason: dl.Reason, Attempts: dl.Attempts, Data: data})
	if err != nil {
		return err
	}
	info, _ := t.d.cardOf(k, obj)
	ctx, cancel := context.WithTimeout(t.s.q.ctx, c.timeout)
	defer cancel()
	return c.dlq.Send(ctx, sink.Event{ID: dl.EventID, Type: "dead_letter", Source: sourceOf(k, obj), Subject: obj.GetName(),
		Key: string(info.uid), Time: t.d.Now().UTC(), Data: body})
}
