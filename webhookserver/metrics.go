package webhookserver

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cardplane_webhook_requests_total",
		Help: "Provider callbacks by endpoint, provider, event type and result (applied, duplicate, unknown, authorized, or the rejection reason).",
	}, []string{"webhook_endpoint", "provider", "event", "result"})
	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cardplane_webhook_request_duration_seconds",
		Help:    "Time from reading a provider callback to answering it.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"provider"})
	challengesDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cardplane_challenges_undelivered_total",
		Help: "One-time codes received while no destination path was available to hand them to.",
	}, []string{"webhook_endpoint"})
	failuresWithoutHolder = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cardplane_failures_without_holder_total",
		Help: "Failures a provider reported that name neither a card nor a holder (recorded as endpoint Events), by kind.",
	}, []string{"webhook_endpoint", "kind"})
	unknownStatuses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cardplane_unknown_provider_status_total",
		Help: "Card or transaction status values no adapter knows, stored verbatim with the phase Unknown.",
	}, []string{"webhook_endpoint", "kind"})
)

func init() {
	metrics.Registry.MustRegister(requestsTotal, requestDuration, challengesDropped, failuresWithoutHolder, unknownStatuses)
}
