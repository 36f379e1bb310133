package webhookserver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/decisionlog"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/rules"
	"github.com/cardplane/cardplane/webhookserver/event"
	"github.com/cardplane/cardplane/webhookserver/ingest"
	"github.com/cardplane/cardplane/webhookserver/spool"
)

var decisionRecords = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "cardplane_decision_records_total",
	Help: "Records of answered authorization decisions, by result: written, spooled (the API server could not take it; replayed later), or lost (neither; the decision was answered but is recorded nowhere).",
}, []string{"result"})

func init() { metrics.Registry.MustRegister(decisionRecords) }

// transaction is what the rules decide on, from a provider's authorization request.
func transaction(req *event.AuthorizationRequest) rules.Transaction {
	tx := rules.Transaction{ID: req.TransactionID, AuthorizationID: req.AuthorizationID, Amount: req.Amount, Channel: req.Channel}
	if m := req.Merchant; m != nil {
		tx.MCC, tx.MerchantName, tx.MerchantCountry = m.MCC, m.Name, m.Country
	}
	return tx
}

// errRulesNotLoaded refuses a decision before the first rule-set sync: without every rule, none is answered.
var errRulesNotLoaded = refuse(http.StatusServiceUnavailable, cardsv1alpha1.ReasonNotReady,
	"the rule sets are not loaded yet; no decision is answered").later(1)

// serveAuthorization answers a real-time authorization request (UPay CC_AUTHORIZATION) within the budget,
// counted from when the request arrived: the card is read from the cache (and created only on first sight,
// with the endpoint's cardLabels, so the rule sets govern it), the decision (with its spend-ledger write) is
// made and answered, and only then, off the request, is the pending transaction with the decision written (or
// spooled, if the API server cannot take it). A provider retry of the same request gets the same
// answer.
func (s *Server) serveAuthorization(c *call, ev *event.Event) *refusal {
	if s.Authorizer != nil && !s.Authorizer.Ready() {
		return errRulesNotLoaded
	}
	ctx, cancel := context.WithDeadline(context.WithoutCancel(c.ctx()), c.received.Add(s.AuthorizationBudget))
	defer cancel()
	card, err := s.Ingester.FindCard(ctx, c.cfg, ev.CardID)
	if err == nil && card == nil {
		var out *ingest.Result
		if out, err = s.Ingester.Apply(ctx, c.cfg, ev, c.received); err == nil && len(out.Cards) > 0 {
			card = out.Cards[0]
		}
	}
	d := s.decide(ctx, card, err, ev.Authorization)
	d.LatencyMicroseconds = s.Now().Sub(c.received).Microseconds()
	s.acknowledge(c, OutcomeAuthorized, c.res.Authorize(d.Outcome == cardsv1alpha1.DecisionApproved))
	s.logDecision(decisionlog.SourceCallback, c.ep, card, ev.CardID, ev.Authorization, d)
	s.afterAnswer(func() { s.recordDecision(c.ctx(), c.cfg, c.key, ev, d, c.received) })
	return nil
}

// logDecision writes an answered decision to the decision log (never blocking; see decisionlog).
func (s *Server) logDecision(source string, ep *cardsv1alpha1.WebhookEndpoint, card *cardsv1alpha1.Card, providerCardID string,
	req *event.AuthorizationRequest, d cardsv1alpha1.AuthorizationDecision) {
	if s.Decisions == nil {
		return
	}
	r := decisionlog.Record{Time: s.Now(), Source: source, RuleResult: d.RuleResult, Shadow: d.Shadow,
		RuleSetVersion: d.RuleSetVersion, RuleSetRevision: d.RuleSetRevision, LatencyMicroseconds: d.LatencyMicroseconds,
		Input: decisionlog.Input{TransactionID: req.TransactionID, AuthorizationID: req.AuthorizationID,
			Amount: req.Amount.Value, Currency: req.Amount.Currency, Channel: req.Channel}}
	if m := req.Merchant; m != nil {
		r.Input.MCC, r.Input.MerchantName, r.Input.MerchantCountry = m.MCC, m.Name, m.Country
	}
	if ep != nil {
		r.Endpoint, r.Provider = ep.Namespace+"/"+ep.Name, string(ep.Spec.Provider)
	}
	if card != nil {
		r.Card = &decisionlog.Card{Namespace: card.Namespace, Name: card.Name, ProviderCardID: card.Spec.ProviderCardID,
			Labels: card.Labels, Phase: card.Status.Phase}
	} else if providerCardID != "" {
		r.Card = &decisionlog.Card{ProviderCardID: providerCardID}
	}
	s.Decisions.Log(r)
}

// afterAnswer runs work once the answer has left, off the request: a provider reuses its connection, and the
// next callback on it must not wait for this one's record. Shutdown waits for the work still running.
func (s *Server) afterAnswer(work func()) {
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		work()
	}()
}

// decide is the decision for a card, declining when the card could not be had or nothing decides.
func (s *Server) decide(ctx context.Context, card *cardsv1alpha1.Card, cardErr error, req *event.AuthorizationRequest) cardsv1alpha1.AuthorizationDecision {
	switch {
	case cardErr != nil || card == nil:
		// Without the card no rule can be evaluated, and the provider's deadline still holds: decline.
		return cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionDeclined,
			Reason: cardsv1alpha1.DecisionCardUnavailable}}
	case s.Authorizer == nil:
		// No rules engine wired: nothing governs the card, and nothing may approve it.
		return cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionDeclined,
			Reason: cardsv1alpha1.DecisionNoRuleSet}}
	}
	return s.Authorizer.Decide(ctx, card, transaction(req))
}

// recordDecision writes the pending transaction with its decision, after the answer. When the API server cannot
// take it within the store deadline it is spooled and replayed like a callback, so no answered decision goes
// unrecorded.
func (s *Server) recordDecision(ctx context.Context, cfg *endpointconfig.Resolved, key client.ObjectKey, ev *event.Event,
	d cardsv1alpha1.AuthorizationDecision, received time.Time) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.StoreTimeout)
	defer cancel()
	at := s.Now()
	out, err := s.Ingester.Apply(rctx, cfg, ev, received)
	if err == nil && out.Transaction != nil {
		if out.Transaction.Status.Authorization != nil {
			decisionRecords.WithLabelValues("written").Inc()
			return // decided before (a retry that reached another replica): the first record stands
		}
		err = s.Ingester.RecordDecision(rctx, out.Transaction, d, at)
	}
	if err == nil {
		decisionRecords.WithLabelValues("written").Inc()
		return
	}
	decided := metav1.NewTime(at)
	d.DecidedAt = &decided
	if s.Spool != nil {
		entry := spool.Entry{Endpoint: key, Received: received, Event: *ev, Decision: &d}
		var serr error
		if disposition(err) == spool.Refused {
			serr = s.Spool.DeadLetter(entry, err.Error(), s.Now())
		} else {
			serr = s.Spool.Append(entry)
		}
		if serr == nil {
			spoolAppended.Inc()
			decisionRecords.WithLabelValues("spooled").Inc()
			return
		}
		if errors.Is(serr, spool.ErrFull) {
			spoolFull.Inc()
		}
	}
	decisionRecords.WithLabelValues("lost").Inc()
	logf.FromContext(ctx).Error(err, "Recording an answered authorization decision failed, and it could not be spooled",
		"outcome", d.Outcome, "reason", d.Reason)
}
