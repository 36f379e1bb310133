package projection

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

var (
	deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cardplane_destination_deliveries_total",
		Help: "Deliveries of Card and CardTransaction states to destinations, by result (delivered, failed, gave_up).",
	}, []string{"webhook_endpoint", "destination", "result"})
	deliveryDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cardplane_destination_delivery_duration_seconds",
		Help:    "Duration of one delivery request to a destination, successful or not.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"webhook_endpoint", "destination"})
	pendingGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cardplane_destination_pending",
		Help: "Objects whose latest state waits to be delivered to a destination.",
	}, []string{"webhook_endpoint", "destination"})
	lagGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cardplane_destination_lag_seconds",
		Help: "Age of the oldest state waiting to be delivered to a destination (0 when none waits).",
	}, []string{"webhook_endpoint", "destination"})
	circuitGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cardplane_destination_circuit_open",
		Help: "1 while a destination's circuit breaker holds its deliveries back.",
	}, []string{"webhook_endpoint", "destination"})
)

func init() {
	metrics.Registry.MustRegister(deliveries, deliveryDuration, pendingGauge, lagGauge, circuitGauge)
}

// queueMetrics are one queue's series.
type queueMetrics struct {
	deliveries            *prometheus.CounterVec // by result
	duration              prometheus.Observer
	pending, lag, circuit prometheus.Gauge
	forget                func()
}

func (m queueMetrics) observe(err error, took time.Duration) {
	result := "delivered"
	if err != nil {
		result = "failed"
	}
	m.deliveries.WithLabelValues(result).Inc()
	m.duration.Observe(took.Seconds())
}

// newQueueMetrics curries the families with labels; forget deletes the queue's series.
func newQueueMetrics(labels prometheus.Labels, deliveries *prometheus.CounterVec, duration *prometheus.HistogramVec,
	pending, lag, circuit *prometheus.GaugeVec) queueMetrics {
	return queueMetrics{deliveries: deliveries.MustCurryWith(labels), duration: duration.With(labels),
		pending: pending.With(labels), lag: lag.With(labels), circuit: circuit.With(labels),
		forget: func() {
			for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{deliveries, duration, pending, lag, circuit} {
				v.DeletePartialMatch(labels)
			}
		}}
}

func destinationMetrics(endpoint types.NamespacedName, destination string) queueMetrics {
	return newQueueMetrics(prometheus.Labels{"webhook_endpoint": endpoint.String(), "destination": destination},
		deliveries, deliveryDuration, pendingGauge, lagGauge, circuitGauge)
}

// statusPatch is the part of a WebhookEndpoint's status the dispatcher owns.
type statusPatch struct {
	Destinations []cardsv1alpha1.DestinationStatus `json:"destinations"`
	// DestinationHealth is null when the endpoint has no destinations: the merge patch then removes it.
	DestinationHealth *cardsv1alpha1.DestinationState `json:"destinationHealth"`
}

// due reports whether p must be written over ep's status: at once when a destination's state changed (or
// one was added or removed), after the routine interval when only progress did (the checkpoint, the backlog,
// the last delivery), never when nothing did.
func (p *statusPatch) due(ep *cardsv1alpha1.WebhookEndpoint, routine bool) bool {
	health := cardsv1alpha1.DestinationState("")
	if p.DestinationHealth != nil {
		health = *p.DestinationHealth
	}
	if ep.Status.DestinationHealth != health || len(p.Destinations) != len(ep.Status.Destinations) {
		return true
	}
	changed := false
	for i, d := range p.Destinations {
		was := ep.Status.Destinations[i]
		if d.Name != was.Name || d.State != was.State || d.LastError != was.LastError {
			return true
		}
		changed = changed || !equality.Semantic.DeepEqual(d, was)
	}
	return changed && routine
}

// routineEvery is how many status intervals pass between writes of progress alone (30 s by default): the
// checkpoint moves in steps of that size, so a new leader may send again what was delivered in the last
// ones before a crash, and the status costs the API server one write per endpoint per step, not per delivery.
const routineEvery = 15

// runStatus writes the endpoints' delivery status and the gauges every StatusInterval until ctx ends.
func (d *Dispatcher) runStatus(ctx context.Context) {
	t := time.NewTicker(d.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.writeStatus(ctx)
		}
	}
}

func (d *Dispatcher) writeStatus(ctx context.Context) {
	// Read before the pending sets: every change at or below these was enqueued already (see route).
	seen := [kinds]uint64{d.seen[kindCard].Load(), d.seen[kindTransaction].Load()}
	type work struct {
		key   types.NamespacedName
		patch *statusPatch
	}
	var todo []work
	d.mu.Lock()
	var unresolved uint64
	for _, rv := range d.unresolved {
		if unresolved == 0 || rv < unresolved {
			unresolved = rv
		}
	}
	for key, e := range d.endpoints {
		p := &statusPatch{Destinations: []cardsv1alpha1.DestinationStatus{}}
		health := cardsv1alpha1.DestinationHealthy
		for _, dest := range e.ep.Spec.Destinations {
			if q := e.queues[dest.Name]; q != nil {
				s := q.status(seen, unresolved)
				p.Destinations = append(p.Destinations, s)
				health = worse(health, s.State)
			}
		}
		if len(p.Destinations) > 0 {
			p.DestinationHealth = &health
		}
		// Compared with the endpoint as the informer last saw it: nothing is written for an endpoint whose
		// status already says it, after a restart either.
		routine := d.Now().Sub(e.written) >= routineEvery*d.StatusInterval
		if p.due(e.ep, routine) {
			e.written = d.Now()
			todo = append(todo, work{key, p})
		}
	}
	d.mu.Unlock()
	d.writeSinkStatuses(ctx, seen, unresolved)
	for _, w := range todo {
		body, err := json.Marshal(map[string]any{"status": w.patch})
		if err != nil {
			continue
		}
		ep := &cardsv1alpha1.WebhookEndpoint{}
		ep.Namespace, ep.Name = w.key.Namespace, w.key.Name
		err = d.Client.Status().Patch(ctx, ep, client.RawPatch(types.MergePatchType, body), fieldOwner)
		if client.IgnoreNotFound(err) != nil {
			logf.FromContext(ctx).Info("Writing the delivery status failed; trying again", "endpoint", w.key, "error", err.Error())
		}
	}
}

// progress is what a queue reports of itself: its state, backlog and checkpoint.
type progress struct {
	state                     cardsv1alpha1.DestinationState
	pending                   int64
	oldest                    time.Time
	lag                       time.Duration
	checkpoint                *cardsv1alpha1.DeliveryCheckpoint
	lastDelivery, lastFailure time.Time
	lastError                 string
}

// progress reports the queue's state, backlog and checkpoint, and sets its gauges. unresolved is the lowest
// resourceVersion of a transaction not yet routed (0: none).
func (q *destQueue) progress(seen [kinds]uint64, unresolved uint64) progress {
	q.mu.Lock()
	defer q.mu.Unlock()
	var oldest time.Time
	var low [kinds]uint64
	for key, p := range q.pending {
		if oldest.IsZero() || p.since.Before(oldest) {
			oldest = p.since
		}
		if low[key.kind] == 0 || p.minRV < low[key.kind] {
			low[key.kind] = p.minRV
		}
	}
	if unresolved != 0 && (low[kindTransaction] == 0 || unresolved < low[kindTransaction]) {
		low[kindTransaction] = unresolved
	}
	cp := q.written
	for k := range kinds {
		if q.backfilling.Load() || q.d.frozen(k) {
			continue
		}
		cp[k] = max(seen[k], q.start[k])
		if low[k] != 0 {
			cp[k] = min(cp[k], low[k]-1)
		}
	}
	q.written = cp
	p := progress{state: cardsv1alpha1.DestinationHealthy, pending: int64(len(q.pending)), oldest: oldest,
		lastDelivery: q.health.lastDelivery, lastFailure: q.health.lastFailure, lastError: q.health.lastError}
	if cp[kindCard] != 0 || cp[kindTransaction] != 0 {
		p.checkpoint = &cardsv1alpha1.DeliveryCheckpoint{Cards: rvString(cp[kindCard]), Transactions: rvString(cp[kindTransaction])}
	}
	if !oldest.IsZero() {
		p.lag = q.d.Now().Sub(oldest)
	}
	open := 0.0
	switch {
	case q.breaker.open():
		p.state, open = cardsv1alpha1.DestinationUnreachable, 1
	case q.health.failing:
		p.state = cardsv1alpha1.DestinationRetrying
	}
	q.m.pending.Set(float64(len(q.pending)))
	q.m.lag.Set(p.lag.Seconds())
	q.m.circuit.Set(open)
	return p
}

// status is a destination's entry in its endpoint's status.
func (q *destQueue) status(seen [kinds]uint64, unresolved uint64) cardsv1alpha1.DestinationStatus {
	p := q.progress(seen, unresolved)
	name := q.name
	if t, ok := q.t.(*destTarget); ok {
		name = t.dest
	}
	return cardsv1alpha1.DestinationStatus{Name: name, State: p.state, Pending: p.pending, LastError: p.lastError,
		Checkpoint: p.checkpoint, OldestPendingTime: ptrTime(p.oldest),
		LastDeliveryTime: ptrTime(p.lastDelivery), LastFailureTime: ptrTime(p.lastFailure)}
}

func rvString(rv uint64) string {
	if rv == 0 {
		return ""
	}
	return strconv.FormatUint(rv, 10)
}

// ptrTime is t at the second metav1.Time keeps; nil for the zero time.
func ptrTime(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t.Truncate(time.Second))
	return &mt
}

// worse is the worse of two destination states.
func worse(a, b cardsv1alpha1.DestinationState) cardsv1alpha1.DestinationState {
	order := []cardsv1alpha1.DestinationState{cardsv1alpha1.DestinationHealthy, cardsv1alpha1.DestinationRetrying, cardsv1alpha1.DestinationUnreachable}
	if slices.Index(order, b) > slices.Index(order, a) {
		return b
	}
	return a
}
