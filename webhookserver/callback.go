package webhookserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/projection"
	"github.com/cardplane/cardplane/internal/text"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
	"github.com/cardplane/cardplane/webhookserver/ingest"
	"github.com/cardplane/cardplane/webhookserver/spool"
)

// call is one callback on its way through the receiver: what each step learned, for the next step, the
// counters and the metrics.
type call struct {
	w        http.ResponseWriter
	r        *http.Request
	received time.Time
	key      types.NamespacedName
	ep       *cardsv1alpha1.WebhookEndpoint // nil until routed: counters apply only to existing endpoints
	cfg      *endpointconfig.Resolved
	body     []byte
	res      *adapter.Result
	// answerKey is where the answer is cached for a repeated delivery ("" when the provider sends no ID).
	answerKey string
	// source is the caller's address (through trusted proxies).
	source netip.Addr

	// metric labels
	endpoint, provider, event, result string
}

// ctx is the request's context with the endpoint in its logger.
func (c *call) ctx() context.Context {
	ctx := c.r.Context()
	return logf.IntoContext(ctx, logf.FromContext(ctx).WithValues("endpoint", klog.KRef(c.key.Namespace, c.key.Name)))
}

func (s *Server) serveCallback(w http.ResponseWriter, r *http.Request) {
	c := &call{w: w, r: r, received: s.Now(), source: clientIP(r, s.TrustedProxies),
		key: types.NamespacedName{Namespace: r.PathValue("namespace"), Name: r.PathValue("name")}}
	defer func() {
		requestsTotal.WithLabelValues(c.endpoint, c.provider, c.event, c.result).Inc()
		requestDuration.WithLabelValues(c.provider).Observe(time.Since(c.received).Seconds())
	}()
	for _, step := range []func(*call) *refusal{s.screen, s.route, s.admit, s.read, s.decode, s.limit, s.answer} {
		if ref := step(c); ref != nil {
			s.refuse(c, ref)
			return
		}
	}
}

// refuse answers a refusal and counts it. A refusal of the caller's own making (unknown path, bad signature,
// malformed or oversized body) spends its source address's budget.
func (s *Server) refuse(c *call, ref *refusal) {
	c.result = ref.reason
	if c.ep != nil {
		s.Counters.Rejected(c.key, ref.reason)
	}
	switch ref.status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusRequestEntityTooLarge:
		if s.RefusedPerSource > 0 && c.source.IsValid() {
			s.refusedFrom(c.source).Allow()
		}
	}
	writeRefusal(c.w, ref)
}

// screen refuses, unread, the requests of a source address whose recent requests were refused too often: a
// flood of unsigned junk costs one map lookup each, and cannot spend an endpoint's rate limit.
func (s *Server) screen(c *call) *refusal {
	if s.RefusedPerSource <= 0 || !c.source.IsValid() || s.refusedFrom(c.source).Tokens() >= 1 {
		return nil
	}
	return refuse(http.StatusTooManyRequests, cardsv1alpha1.ReasonSourceRateLimited,
		"too many refused requests from %s; retry later", c.source).later(5)
}

// acknowledge answers a callback the receiver took, remembers the answer for a repeated delivery and counts it.
func (s *Server) acknowledge(c *call, outcome Outcome, answer adapter.Answer) {
	c.result = string(outcome)
	s.answers.remember(c.answerKey, answer, 2*c.cfg.TimestampTolerance)
	s.Counters.Accepted(c.key, c.received, outcome)
	write(c.w, answer)
}

// route finds the endpoint the path names.
func (s *Server) route(c *call) *refusal {
	ep := &cardsv1alpha1.WebhookEndpoint{}
	if err := s.Reader.Get(c.r.Context(), c.key, ep); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return refuse(http.StatusNotFound, cardsv1alpha1.ReasonNotFound, "no WebhookEndpoint %s", c.key)
		}
		return refuse(http.StatusServiceUnavailable, cardsv1alpha1.ReasonNotReady, "cannot read the endpoint; retry")
	}
	c.ep, c.endpoint, c.provider = ep, c.key.String(), string(ep.Spec.Provider)
	s.Counters.Received(c.key)
	return nil
}

// admit lets through callbacks for a Ready endpoint, on its URL token, from its allowed sources.
func (s *Server) admit(c *call) *refusal {
	ready := apimeta.FindStatusCondition(c.ep.Status.Conditions, cardsv1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != c.ep.Generation {
		msg := "endpoint is not Ready"
		if ready != nil && ready.Status != metav1.ConditionTrue {
			msg += ": " + ready.Reason + ": " + ready.Message
		}
		return refuse(http.StatusServiceUnavailable, cardsv1alpha1.ReasonNotReady, "%s", msg).later(10)
	}
	cfg, err := endpointconfig.Resolve(c.r.Context(), s.Reader, c.ep)
	if err != nil {
		return refuse(http.StatusServiceUnavailable, cardsv1alpha1.ReasonNotReady, "endpoint is not Ready: %v", err).later(10)
	}
	c.cfg = cfg
	return authentic(c.r, cfg)
}

// limit applies the endpoint's rate limit to verified callbacks only: unsigned junk never spends it.
func (s *Server) limit(c *call) *refusal {
	if lim := s.limiter(c.ep); lim != nil && !lim.Allow() {
		return refuse(http.StatusTooManyRequests, cardsv1alpha1.ReasonRateLimited, "rate limit of this endpoint exceeded; retry").later(1)
	}
	return nil
}

// read takes the body, up to MaxBodyBytes.
func (s *Server) read(c *call) *refusal {
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, s.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return refuse(http.StatusRequestEntityTooLarge, cardsv1alpha1.ReasonTooLarge, "body is larger than %d bytes", s.MaxBodyBytes)
		}
		return refuse(http.StatusBadRequest, cardsv1alpha1.ReasonMalformed, "could not read the body: %v", err)
	}
	c.body = body
	return nil
}

// decode verifies and decodes the callback with the provider's adapter, and fits its events to the API schema.
func (s *Server) decode(c *call) *refusal {
	ad := s.Adapters[c.ep.Spec.Provider]
	if ad == nil {
		return refuse(http.StatusServiceUnavailable, cardsv1alpha1.ReasonNotReady, "no adapter for provider %s", c.ep.Spec.Provider)
	}
	res, err := ad.Decode(&adapter.Request{Header: c.r.Header, Body: c.body, Received: c.received, Endpoint: c.cfg})
	if err != nil {
		if rej, ok := adapter.AsRejection(err); ok {
			return refuse(rej.Status, rej.Reason, "%s", rej.Message)
		}
		return refuse(http.StatusBadRequest, cardsv1alpha1.ReasonMalformed, "%v", err)
	}
	c.res, c.event = res, metricEvent(res)
	if res.Unknown {
		return nil
	}
	for i := range res.Events {
		if err := ingest.Fit(&res.Events[i]); err != nil {
			return refuse(http.StatusBadRequest, cardsv1alpha1.ReasonMalformed, "%v", err)
		}
	}
	return nil
}

func metricEvent(res *adapter.Result) string {
	if res.Unknown || res.EventType == "" {
		return "unknown"
	}
	return text.Clip(res.EventType, 64)
}

// answer gives a verified callback its answer: a repeated delivery gets the answer it got before, an unknown
// event type is acknowledged, an authorization request its decision, and every other callback is applied first.
func (s *Server) answer(c *call) *refusal {
	if c.res.DeliveryID != "" {
		// The provider's delivery ID is not signed by every provider (UPay's X-UPA-REQUESTID is a header): the
		// body is part of the key, so a verified request that reuses an ID with other content is applied.
		sum := sha256.Sum256(c.body)
		c.answerKey = string(c.ep.UID) + "/" + c.res.DeliveryID + "/" + hex.EncodeToString(sum[:16])
		if prev, ok := s.answers.get(c.answerKey); ok {
			// The same delivery again (a provider retry after our answer was lost): it was applied already.
			c.result = string(OutcomeDuplicate)
			s.Counters.Accepted(c.key, c.received, OutcomeDuplicate)
			write(c.w, prev)
			return nil
		}
	}
	switch {
	case c.res.Unknown:
		s.notice(c.ep, cardsv1alpha1.EventUnknownEvent, fmt.Sprintf("acknowledged a verified %s callback of unknown event type %q without applying it",
			c.ep.Spec.Provider, text.Clip(c.res.EventType, 64)))
		s.acknowledge(c, OutcomeUnknown, c.res.Ack)
		return nil
	case c.res.Authorize != nil && len(c.res.Events) == 1 && c.res.Events[0].Authorization != nil:
		return s.serveAuthorization(c, &c.res.Events[0])
	}
	return s.apply(c)
}

// apply writes the events and acknowledges them; what the API server cannot take now goes to the spool.
func (s *Server) apply(c *call) *refusal {
	ctx, cancel := context.WithTimeout(c.ctx(), s.StoreTimeout)
	defer cancel()
	applied := false
	for i := range c.res.Events {
		ev := &c.res.Events[i]
		out, err := s.Ingester.Apply(ctx, c.cfg, ev, c.received)
		if err != nil {
			return s.keep(c, c.res.Events[i:], err)
		}
		applied = applied || out.Changed || out.Orphan != nil // an orphan failure is recorded (Event), not a duplicate
		s.afterApply(c, ev, out)
	}
	outcome := OutcomeApplied
	if !applied {
		outcome = OutcomeDuplicate
	}
	s.acknowledge(c, outcome, c.res.Ack)
	return nil
}

// afterApply tells about what no object could hold or no adapter understood, and hands one-time codes on,
// from memory.
func (s *Server) afterApply(c *call, ev *event.Event, out *ingest.Result) {
	if f := out.Orphan; f != nil {
		failuresWithoutHolder.WithLabelValues(c.endpoint, f.Kind).Inc()
		s.notice(c.ep, cardsv1alpha1.EventFailureWithoutHolder, fmt.Sprintf("%s %s failed for no known card or holder: status %q, reason %q, reference %q",
			c.ep.Spec.Provider, f.Kind, f.ProviderStatus, f.Reason, f.Reference))
	}
	s.noticeUnknownStatus(c, ev)
	if ev.Challenge == nil {
		return
	}
	var card *cardsv1alpha1.Card
	if len(out.Cards) > 0 {
		card = out.Cards[0]
	}
	if s.Challenges != nil {
		s.Challenges.Deliver(c.ctx(), c.ep, card, challenge(ev.Challenge))
	} else {
		challengesDropped.WithLabelValues(c.endpoint).Inc()
	}
	ev.Challenge.Code = "" // not kept a moment longer than needed
}

// challenge is what the projection delivers of a challenge, code included.
func challenge(ch *event.Challenge) *projection.Challenge {
	return &projection.Challenge{ID: ch.ID, Purpose: ch.Purpose, Method: ch.Method, Status: ch.Status, Amount: ch.Amount,
		Merchant: ch.Merchant, ExpiresAt: ch.ExpiresAt, Code: ch.Code}
}

// keep makes the events a failed write left undone durable and acknowledges them: in the spool when the
// failure may pass, as dead letters when the API server refuses them for good (an Event and a metric say so).
// Without a spool, or when it cannot take them, the callback is refused and the provider retries.
func (s *Server) keep(c *call, events []event.Event, cause error) *refusal {
	if s.Spool != nil {
		var kept bool
		if disposition(cause) == spool.Refused {
			kept = s.deadLetter(c, events, cause)
		} else {
			kept = s.spool(c, events)
		}
		if kept {
			s.acknowledge(c, OutcomeSpooled, c.res.Ack)
			return nil
		}
	}
	logf.FromContext(c.ctx()).Error(cause, "Storing a callback failed; the provider will retry", "event", c.event)
	return refuse(http.StatusServiceUnavailable, cardsv1alpha1.ReasonStoreFailed, "the event could not be stored; retry").later(3)
}

// spool appends events to the spool; it reports whether they are durable now.
func (s *Server) spool(c *call, events []event.Event) bool {
	entries := make([]spool.Entry, 0, len(events))
	for _, ev := range events {
		entries = append(entries, spool.Entry{Endpoint: c.key, Received: c.received, Event: ev})
	}
	if err := s.Spool.Append(entries...); err != nil {
		if errors.Is(err, spool.ErrFull) {
			spoolFull.Inc()
		}
		logf.FromContext(c.ctx()).Error(err, "Spooling failed; answering 5xx")
		return false
	}
	spoolAppended.Add(float64(len(entries)))
	s.forwardChallenges(c, events)
	return true
}

// deadLetter keeps events the API server refuses for good; it reports whether they are durable now.
func (s *Server) deadLetter(c *call, events []event.Event, cause error) bool {
	for _, ev := range events {
		if err := s.Spool.DeadLetter(spool.Entry{Endpoint: c.key, Received: c.received, Event: ev}, cause.Error(), s.Now()); err != nil {
			logf.FromContext(c.ctx()).Error(err, "Keeping a refused event as a dead letter failed; answering 5xx")
			return false
		}
		deadLettered.WithLabelValues(c.endpoint).Inc()
	}
	logf.FromContext(c.ctx()).Info("The API server refused a verified event for good; kept as a dead letter", "event", c.event, "reason", cause.Error())
	if s.Recorder != nil {
		recordDeadLetter(s.Recorder, c.key)
	}
	s.forwardChallenges(c, events)
	return true
}

// forwardChallenges hands the one-time codes of events that were not applied to their destinations now,
// from memory, card or no card: they are never spooled.
func (s *Server) forwardChallenges(c *call, events []event.Event) {
	for _, ev := range events {
		if ev.Challenge != nil && s.Challenges != nil {
			s.Challenges.Deliver(c.ctx(), c.ep, nil, challenge(ev.Challenge))
		}
	}
}

// notice records a Kubernetes Event on the endpoint, at most once per reason and message every 10 minutes.
func (s *Server) notice(ep *cardsv1alpha1.WebhookEndpoint, reason, msg string) {
	key := string(ep.UID) + "/" + reason + "/" + msg
	if _, seen := s.notices.Get(key); seen || s.Recorder == nil {
		return
	}
	s.notices.Add(key, true, 10*time.Minute)
	s.Recorder.Eventf(ep, nil, corev1.EventTypeWarning, reason, "Receive", "%s", msg)
}

// noticeUnknownStatus reports a status value the adapter kept verbatim with the neutral phase Unknown: stored
// and acknowledged (a refusal would make the provider retry it forever), but someone should map it.
func (s *Server) noticeUnknownStatus(c *call, ev *event.Event) {
	report := func(kind, status string) {
		unknownStatuses.WithLabelValues(c.endpoint, kind).Inc()
		s.notice(c.ep, cardsv1alpha1.EventUnknownProviderStatus, fmt.Sprintf("%s %s carried the %s status %q, which cardplane does not know; stored verbatim with phase Unknown",
			c.ep.Spec.Provider, ev.Type, kind, status))
	}
	if ev.Card != nil && ev.Card.Phase == cardsv1alpha1.CardUnknown {
		report("card", ev.Card.ProviderStatus)
	}
	if ev.Transaction != nil && ev.Transaction.Phase == cardsv1alpha1.TransactionUnknown {
		report("transaction", ev.Transaction.ProviderStatus)
	}
	if ev.KYC != nil && ev.KYC.State == cardsv1alpha1.KYCUnknown {
		report("kyc", ev.KYC.ProviderStatus)
	}
}
