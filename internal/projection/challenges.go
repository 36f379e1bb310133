package projection

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/sink"
	"github.com/cardplane/cardplane/internal/sinkconfig"
)

var challengeDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "cardplane_challenge_deliveries_total",
	Help: "One-time code deliveries to destinations, by result (delivered, failed, insecure: refused for a plain http:// destination).",
}, []string{"webhook_endpoint", "destination", "result"})

func init() { metrics.Registry.MustRegister(challengeDeliveries) }

// ChallengeForwarder hands one-time codes (3-D Secure OTPs, activation and verification codes) to the
// destinations that list challenge.otp, straight from memory: the codes are never written to the API server,
// a log or an Event. It retries a few times within seconds, in the background, so the provider's ack is not
// held up; a code is useless minutes later, so there is nothing durable to resume.
type ChallengeForwarder struct {
	// Reader reads the endpoints' Secrets and the CardEventSinks.
	Reader  client.Reader
	Network *Network
	// Sinks is the address policy of the CardEventSinks that list challenge.otp.
	Sinks    SinkPolicy
	Attempts int           // default 3
	Backoff  time.Duration // first retry delay, doubled each time; default 1s
}

// Challenge is a 3-D Secure or verification challenge with its one-time code, in memory only.
type Challenge struct {
	// ID is the provider's challenge ID (securement, verification or auth ID).
	ID string
	// Purpose is "3ds", "verification" or "activation"; Method how the code reaches the holder (OTP, OOB, URL).
	Purpose, Method, Status string
	Amount                  *cardsv1alpha1.Money
	Merchant                *cardsv1alpha1.Merchant
	ExpiresAt               time.Time
	// Code is the one-time code: never written to the API server, logs or Events.
	Code string `json:"-"`
}

// challengePayload is the data of a challenge.otp delivery.
type challengePayload struct {
	Card      *cardRef                                `json:"card,omitempty"`
	Challenge challengeData                           `json:"challenge"`
	Endpoint  cardsv1alpha1.NamespacedObjectReference `json:"endpoint"`
}

type cardRef struct {
	Namespace      string                      `json:"namespace"`
	Name           string                      `json:"name"`
	ProviderCardID string                      `json:"providerCardID"`
	Number         *cardsv1alpha1.MaskedNumber `json:"number,omitempty"`
}

type challengeData struct {
	ID        string                  `json:"id,omitempty"`
	Purpose   string                  `json:"purpose,omitempty"`
	Method    string                  `json:"method,omitempty"`
	Status    string                  `json:"status,omitempty"`
	Amount    *cardsv1alpha1.Money    `json:"amount,omitempty"`
	Merchant  *cardsv1alpha1.Merchant `json:"merchant,omitempty"`
	ExpiresAt *time.Time              `json:"expiresAt,omitempty"`
	Code      string                  `json:"code"`
}

// Deliver starts the deliveries of one challenge and returns at once.
func (f *ChallengeForwarder) Deliver(ctx context.Context, ep *cardsv1alpha1.WebhookEndpoint, card *cardsv1alpha1.Card, ch *Challenge) {
	p := challengePayload{Endpoint: cardsv1alpha1.NamespacedObjectReference{Namespace: ep.Namespace, Name: ep.Name},
		Challenge: challengeData{ID: ch.ID, Purpose: ch.Purpose, Method: ch.Method, Status: ch.Status, Amount: ch.Amount,
			Merchant: ch.Merchant, Code: ch.Code}}
	if !ch.ExpiresAt.IsZero() {
		t := ch.ExpiresAt.UTC()
		p.Challenge.ExpiresAt = &t
	}
	// The event is about the card when it is known, else about the endpoint that received the challenge.
	source, subject, key := fmt.Sprintf("/apis/%s/namespaces/%s/webhookendpoints/%s", cardsv1alpha1.GroupVersion, ep.Namespace, ep.Name), ep.Name, string(ep.UID)
	if card != nil {
		p.Card = &cardRef{Namespace: card.Namespace, Name: card.Name, ProviderCardID: card.Spec.ProviderCardID, Number: card.Status.Number}
		source, subject, key = sourceOf(kindCard, card), card.Name, string(card.UID)
	}
	data, err := json.Marshal(p)
	if err != nil {
		return
	}
	ev := sink.Event{ID: fmt.Sprintf("otp-%s-%d", ep.UID, time.Now().UnixNano()), Type: string(cardsv1alpha1.EventChallengeOTP),
		Source: source, Subject: subject, Key: key, Time: time.Now().UTC(), Data: data}
	f.deliverToDestinations(ctx, ep, ev)
	if card != nil {
		f.deliverToSinks(ctx, card, ev)
	}
}

// deliverToDestinations hands a challenge to the endpoint's destinations that list challenge.otp, over HTTPS
// only (plain http only to a loopback URL in cardplane dev, connected to on loopback only).
func (f *ChallengeForwarder) deliverToDestinations(ctx context.Context, ep *cardsv1alpha1.WebhookEndpoint, ev sink.Event) {
	log := logf.FromContext(ctx)
	endpoint := ep.Namespace + "/" + ep.Name
	allowed, err := endpointconfig.AllowedCIDRs(ep)
	if err != nil {
		log.Error(err, "Cannot deliver a challenge", "endpoint", klog.KObj(ep))
		return
	}
	for i := range ep.Spec.Destinations {
		d := &ep.Spec.Destinations[i]
		if !slices.Contains(d.EventTypes, cardsv1alpha1.EventChallengeOTP) {
			continue
		}
		dial, ok := f.Network.confidentialDial(d.URL, d.HTTP, allowed)
		if !ok {
			// A configuration error, not a passing failure: the reconciler reports the endpoint not Ready too.
			challengeDeliveries.WithLabelValues(endpoint, d.Name, "insecure").Inc()
			log.Error(ErrInsecureDestination, "One-time code refused for a plain http:// destination; the code is dropped", "endpoint", endpoint, "destination", d.Name)
			continue
		}
		timeout := 5 * time.Second
		if d.Timeout != nil && d.Timeout.Duration > 0 {
			timeout = min(d.Timeout.Duration, maxTimeout)
		}
		s, err := sinkconfig.Build(ctx, f.Reader, ep.Namespace, sinkconfig.Destination(d), sinkconfig.Options{Dial: dial, RootCAs: f.Network.RootCAs, Timeout: timeout})
		if err != nil {
			challengeDeliveries.WithLabelValues(endpoint, d.Name, "failed").Inc()
			log.Error(err, "Cannot build the destination of a challenge delivery", "endpoint", klog.KObj(ep), "destination", d.Name)
			continue
		}
		go f.send(log, s, ev, endpoint, d.Name)
	}
}

// send sends one challenge with a sink built for it, then closes the sink. endpoint is "" for a CardEventSink.
func (f *ChallengeForwarder) send(log logr.Logger, s sink.Sink, ev sink.Event, endpoint, target string) {
	defer func() { _ = s.Close() }()
	err := f.retry(func() error { return s.Send(context.Background(), ev) }, sink.Permanent)
	if err == nil {
		challengeDeliveries.WithLabelValues(endpoint, target, "delivered").Inc()
		return
	}
	challengeDeliveries.WithLabelValues(endpoint, target, "failed").Inc()
	log.Info("Challenge not delivered; the code is dropped", "endpoint", endpoint, "target", target, "error", err.Error())
}

// retry calls send up to Attempts times, Backoff apart and doubling, until it succeeds or fails for good.
func (f *ChallengeForwarder) retry(send func() error, final func(error) bool) error {
	attempts, wait := f.Attempts, f.Backoff
	if attempts <= 0 {
		attempts = 3
	}
	if wait <= 0 {
		wait = time.Second
	}
	var err error
	for a := 0; a < attempts; a++ {
		if a > 0 {
			time.Sleep(wait)
			wait *= 2
		}
		if err = send(); err == nil || final(err) {
			return err
		}
	}
	return err
}
