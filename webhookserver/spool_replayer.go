package webhookserver

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver/ingest"
	"github.com/cardplane/cardplane/webhookserver/spool"
)

var (
	spoolDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cardplane_spool_depth", Help: "Verified events waiting in this replica's spool for the API server."})
	spoolOldest = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cardplane_spool_oldest_entry_age_seconds", Help: "Age of the oldest spooled event (0 when empty)."})
	spoolAppended = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cardplane_spool_appended_total", Help: "Events spooled because the API server could not take them."})
	spoolReplayed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cardplane_spool_replayed_total", Help: "Spooled events applied after the API server came back."})
	spoolFull = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cardplane_spool_full_total", Help: "Callbacks answered 5xx because the spool was full."})
	deadLettered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cardplane_dead_letters_total",
		Help: "Verified events the API server refuses for good (or for longer than the spool retries), kept as dead letters on disk (cardplane spool list).",
	}, []string{"webhook_endpoint"})
	deadLetters = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cardplane_spool_dead_letters", Help: "Dead letters held in this replica's spool directory."})
	spoolCorrupt = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cardplane_spool_corrupt_records", Help: "Damaged places skipped while reading this replica's spool since it opened."})
)

func init() {
	metrics.Registry.MustRegister(spoolDepth, spoolOldest, spoolAppended, spoolReplayed, spoolFull, deadLettered, deadLetters, spoolCorrupt)
}

// disposition says what a failed write of an event deserves: another try later (the API server down, slow,
// overloaded, a conflict; anything not known to be final), or a dead letter (refused for good: invalid, a
// namespace that is gone or terminating, a quota or permission, a name another provider ID holds).
func disposition(err error) spool.Disposition {
	switch {
	case err == nil:
		return spool.Applied
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsNotFound(err), apierrors.IsForbidden(err),
		apierrors.IsRequestEntityTooLargeError(err), apierrors.IsMethodNotSupported(err),
		errors.Is(err, ingest.ErrNoIdentity), errors.Is(err, ingest.ErrNameTaken), errors.As(err, new(*endpointconfig.Error)):
		return spool.Refused
	}
	return spool.Later
}

// SpoolReplayer applies spooled events once the API server takes writes again, on every replica (each has its
// own spool). Refused ones become dead letters, with an Event on their endpoint and a metric. When the
// manager stops, it drains the spool while the API server is reachable, after the receiver stopped taking
// callbacks, so a pod that goes away leaves nothing behind that could be applied.
type SpoolReplayer struct {
	Spool    *spool.Spool
	Reader   client.Reader
	Ingester *ingest.Ingester
	Interval time.Duration
	// Recorder records DeadLettered Events on endpoints; optional.
	Recorder events.EventRecorder
	// MaxAge is how long an event is retried for a passing reason before it is dead-lettered (spool.DefaultMaxAge).
	MaxAge time.Duration
	// Receiver, when set, is waited for before the final drain (its Done).
	Receiver interface{ Done() <-chan struct{} }
	// DrainTimeout bounds the final drain (default 10 s).
	DrainTimeout time.Duration
}

// Start replays every Interval until ctx ends, then drains.
func (r *SpoolReplayer) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("spool")
	if r.MaxAge <= 0 {
		r.MaxAge = spool.DefaultMaxAge
	}
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		r.replay(ctx, log)
		select {
		case <-ctx.Done():
			r.drain(log)
			return nil
		case <-t.C:
		}
	}
}

// drain replays until the spool is empty, the API server stops taking writes, or the drain timeout passes.
func (r *SpoolReplayer) drain(log logr) {
	timeout := r.DrainTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	deadline := time.Now().Add(timeout)
	if r.Receiver != nil {
		select {
		case <-r.Receiver.Done():
		case <-time.After(timeout):
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for time.Now().Before(deadline) {
		if depth, _ := r.Spool.Depth(); depth == 0 {
			return
		}
		if st := r.replay(ctx, log); st.Applied+st.DeadLettered == 0 {
			break // the API server takes nothing now: what is left stays on the spool's volume
		}
	}
	if depth, _ := r.Spool.Depth(); depth > 0 {
		log.Info("Stopping with events in the spool: they are applied when a replica opens this spool directory again", "waiting", depth)
	}
}

// logr is the logger the replayer writes to.
type logr = interface {
	Info(msg string, keysAndValues ...any)
}

// replay runs one replay round and updates the metrics.
func (r *SpoolReplayer) replay(ctx context.Context, log logr) spool.Stats {
	depth, oldest := r.Spool.Depth()
	spoolDepth.Set(float64(depth))
	spoolOldest.Set(0)
	if depth > 0 {
		spoolOldest.Set(time.Since(oldest).Seconds())
	}
	st, err := r.Spool.Replay(func(e spool.Entry) (spool.Disposition, error) {
		err := r.apply(ctx, e)
		return disposition(err), err
	}, r.MaxAge, time.Now(), r.deadLettered)
	spoolReplayed.Add(float64(st.Applied))
	deadLetters.Set(float64(r.Spool.DeadLetters()))
	spoolCorrupt.Set(float64(r.Spool.Corrupt()))
	if st.Applied+st.Retried+st.DeadLettered+st.Requeued > 0 || err != nil {
		log.Info("Replayed spooled events", "applied", st.Applied, "retried", st.Retried, "deadLettered", st.DeadLettered,
			"requeued", st.Requeued, "lastError", errString(st.LastError), "error", errString(err))
	}
	return st
}

// deadLettered tells of a dead letter: a metric and an Event on its endpoint.
func (r *SpoolReplayer) deadLettered(e spool.Entry) {
	deadLettered.WithLabelValues(e.Endpoint.String()).Inc()
	if r.Recorder != nil {
		recordDeadLetter(r.Recorder, e.Endpoint)
	}
}

// recordDeadLetter records a Warning Event on the endpoint; its note is fixed, so repeats fold into one series.
func recordDeadLetter(rec events.EventRecorder, ep client.ObjectKey) {
	ref := &cardsv1alpha1.WebhookEndpoint{TypeMeta: metav1.TypeMeta{APIVersion: cardsv1alpha1.GroupVersion.String(), Kind: "WebhookEndpoint"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ep.Namespace, Name: ep.Name}}
	rec.Eventf(ref, nil, corev1.EventTypeWarning, cardsv1alpha1.EventDeadLettered, "Store",
		"the API server refused a verified event for good; it was acknowledged and kept as a dead letter (cardplane spool list)")
}

// NeedLeaderElection is false: every replica replays its own spool.
func (r *SpoolReplayer) NeedLeaderElection() bool { return false }

func (r *SpoolReplayer) apply(ctx context.Context, e spool.Entry) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ep := &cardsv1alpha1.WebhookEndpoint{}
	if err := r.Reader.Get(ctx, e.Endpoint, ep); err != nil {
		if apierrors.IsNotFound(err) {
			// No endpoint to say where the event belongs: it cannot be applied, and is kept as a dead letter.
			logf.FromContext(ctx).Info("A spooled event's endpoint is gone", "endpoint", klog.KRef(e.Endpoint.Namespace, e.Endpoint.Name), "event", e.Event.Type)
		}
		return err
	}
	// The event was verified when it arrived; where it may be written is decided now (consent withdrawn since
	// makes it a dead letter).
	if err := endpointconfig.CheckTargetNamespace(ctx, r.Reader, ep); err != nil {
		return err
	}
	cfg := &endpointconfig.Resolved{Endpoint: ep, TargetNamespace: endpointconfig.TargetNamespace(ep)}
	out, err := r.Ingester.Apply(ctx, cfg, &e.Event, e.Received)
	if err == nil && e.Decision != nil && out.Transaction != nil {
		err = r.Ingester.RecordDecision(ctx, out.Transaction, *e.Decision, decidedAt(e.Decision, e.Received))
	}
	return err
}

// decidedAt is when a spooled decision was answered.
func decidedAt(d *cardsv1alpha1.AuthorizationDecision, received time.Time) time.Time {
	if d.DecidedAt != nil {
		return d.DecidedAt.Time
	}
	return received
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
