package webhookserver

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
)

func init() {
	metrics.Registry.MustRegister(spoolDepth, spoolOldest, spoolAppended, spoolReplayed, spoolFull)
}

// spoolable reports whether a failed write may succeed later: the API server being down, slow or overloaded.
// A write the API server refuses as invalid never will, so it is not spooled (the provider gets a 5xx).
func spoolable(err error) bool {
	return !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) && !errors.Is(err, ingest.ErrNoIdentity)
}

// SpoolReplayer applies spooled events once the API server takes writes again, on every replica (each has its
// own spool).
type SpoolReplayer struct {
	Spool    *spool.Spool
	Reader   client.Reader
	Ingester *ingest.Ingester
	Interval time.Duration
}

// Start replays every Interval until ctx ends.
func (r *SpoolReplayer) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("spool")
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		depth, oldest := r.Spool.Depth()
		spoolDepth.Set(float64(depth))
		spoolOldest.Set(0)
		if depth > 0 {
			spoolOldest.Set(time.Since(oldest).Seconds())
			n, err := r.Spool.Replay(func(e spool.Entry) error { return r.apply(ctx, e) })
			spoolReplayed.Add(float64(n))
			if n > 0 || err != nil {
				log.Info("Replayed spooled events", "applied", n, "waiting", depth-n, "error", errString(err))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// NeedLeaderElection is false: every replica replays its own spool.
func (r *SpoolReplayer) NeedLeaderElection() bool { return false }

func (r *SpoolReplayer) apply(ctx context.Context, e spool.Entry) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ep := &cardsv1alpha1.WebhookEndpoint{}
	if err := r.Reader.Get(ctx, e.Endpoint, ep); err != nil {
		if apierrors.IsNotFound(err) {
			logf.FromContext(ctx).Info("Dropping a spooled event of a deleted endpoint", "endpoint", klog.KRef(e.Endpoint.Namespace, e.Endpoint.Name), "event", e.Event.Type)
			return nil
		}
		return err
	}
	cfg := &endpointconfig.Resolved{Endpoint: ep, TargetNamespace: ep.Spec.TargetNamespace}
	if cfg.TargetNamespace == "" {
		cfg.TargetNamespace = ep.Namespace
	}
	out, err := r.Ingester.Apply(ctx, cfg, &e.Event, e.Received)
	if err == nil && e.Decision != nil && out.Transaction != nil {
		err = r.Ingester.RecordDecision(ctx, out.Transaction, *e.Decision, decidedAt(e.Decision, e.Received))
	}
	if err != nil && !spoolable(err) {
		logf.FromContext(ctx).Error(err, "Dropping a spooled event the API server refuses", "endpoint", klog.KRef(e.Endpoint.Namespace, e.Endpoint.Name), "event", e.Event.Type)
		return nil
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
