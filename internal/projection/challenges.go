package projection

import (
	"context"
	"encoding/json"
	"errors"
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
	Reader client.Reader
	Sender *Sender
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
	if card != nil {
		p.Card = &cardRef{Namespace: card.Namespace, Name: card.Name, ProviderCardID: card.Spec.ProviderCardID, Number: card.Status.Number}
	}
	body, err := json.Marshal(Envelope{Type: string(cardsv1alpha1.EventChallengeOTP), Timestamp: time.Now().UTC(), Data: p})
	if err != nil {
		return
	}
	id := fmt.Sprintf("otp-%s-%d", ep.UID, time.Now().UnixNano())
	log := logf.FromContext(ctx)
	allowed, err := endpointconfig.AllowedCIDRs(ep)
	if err != nil {
		log.Error(err, "Cannot deliver a challenge", "endpoint", klog.KObj(ep))
		return
	}
	for i := range ep.Spec.Destinations {
		d := ep.Spec.Destinations[i]
		if !slices.Contains(d.EventTypes, cardsv1alpha1.EventChallengeOTP) {
			continue
		}
		secret, err := endpointconfig.DestinationSecret(ctx, f.Reader, ep, &d)
		if err != nil {
			challengeDeliveries.WithLabelValues(ep.Namespace+"/"+ep.Name, d.Name, "failed").Inc()
			log.Error(err, "Cannot sign a challenge delivery", "endpoint", klog.KObj(ep), "destination", d.Name)
			continue
		}
		timeout := 5 * time.Second
		if d.Timeout != nil {
			timeout = d.Timeout.Duration
		}
		msg := Message{ID: id, Body: body, URL: d.URL, Secret: secret, Timeout: timeout, AllowedCIDRs: allowed, Confidential: true}
		go f.send(log, ep.Namespace+"/"+ep.Name, d.Name, msg)
	}
	if card != nil {
		f.deliverToSinks(ctx, card, id, body)
	}
}

func (f *ChallengeForwarder) send(log logr.Logger, endpoint, destination string, msg Message) {
	err := f.retry(func() error { return f.Sender.Send(context.Background(), msg) }, func(err error) bool {
		return errors.Is(err, ErrInsecureDestination)
	})
	if err == nil {
		challengeDeliveries.WithLabelValues(endpoint, destination, "delivered").Inc()
		return
	}
	if errors.Is(err, ErrInsecureDestination) {
		// A configuration error, not a passing failure: the reconciler reports the endpoint not Ready too.
		challengeDeliveries.WithLabelValues(endpoint, destination, "insecure").Inc()
		log.Error(err, "One-time code refused for a plain http:// destination; the code is dropped", "endpoint", endpoint, "destination", destination)
		return
	}
	challengeDeliveries.WithLabelValues(endpoint, destination, "failed").Inc()
	log.Info("Challenge not delivered; the code is dropped", "endpoint", endpoint, "destination", destination, "error", err.Error())
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
