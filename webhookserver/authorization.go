package webhookserver

import (
	"context"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/rules"
	"github.com/cardplane/cardplane/webhookserver/event"
	"github.com/cardplane/cardplane/webhookserver/ingest"
)

// transaction is what the rules decide on, from a provider's authorization request.
func transaction(req *event.AuthorizationRequest) rules.Transaction {
	tx := rules.Transaction{ID: req.TransactionID, AuthorizationID: req.AuthorizationID, Amount: req.Amount, Channel: req.Channel}
	if m := req.Merchant; m != nil {
		tx.MCC, tx.MerchantName, tx.MerchantCountry = m.MCC, m.Name, m.Country
	}
	return tx
}

// serveAuthorization answers a real-time authorization request (UPay CC_AUTHORIZATION) within the budget,
// counted from when the request arrived: the card is read from the cache (and created only on first sight),
// the decision (with its spend-ledger write) is made, the provider gets its answer, and only then is the
// pending transaction with the decision written. A provider retry of the same request gets the same answer.
func (s *Server) serveAuthorization(c *call, ev *event.Event) {
	ctx, cancel := context.WithDeadline(context.WithoutCancel(c.ctx()), c.received.Add(s.AuthorizationBudget))
	defer cancel()
	card, err := s.Ingester.FindCard(ctx, c.cfg, ev.CardID)
	if err == nil && card == nil {
		var out *ingest.Result
		if out, err = s.Ingester.Apply(ctx, c.cfg, ev, c.received); err == nil && len(out.Cards) > 0 {
			card = out.Cards[0]
		}
	}
	var d cardsv1alpha1.AuthorizationDecision
	switch {
	case err != nil || card == nil:
		// Without the card no rule can be evaluated: the provider's deadline still holds, so decline
		// (there is no rule set to name a stand-in).
		d = cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionDeclined, Reason: cardsv1alpha1.DecisionCardUnavailable}}
	case s.Authorizer != nil:
		d = s.Authorizer.Decide(ctx, card, transaction(ev.Authorization))
	default:
		d = cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionApproved, Reason: cardsv1alpha1.DecisionNoRuleSet}}
	}
	d.LatencyMicroseconds = s.Now().Sub(c.received).Microseconds()
	s.acknowledge(c, OutcomeAuthorized, c.res.Authorize(d.Outcome == cardsv1alpha1.DecisionApproved))
	s.recordDecision(c, ev, d)
}

// recordDecision writes the pending transaction with its decision, after the answer, with its own time.
func (s *Server) recordDecision(c *call, ev *event.Event, d cardsv1alpha1.AuthorizationDecision) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx()), 30*time.Second)
	defer cancel()
	out, err := s.Ingester.Apply(ctx, c.cfg, ev, c.received)
	if err == nil && out.Transaction != nil {
		if out.Transaction.Status.Authorization != nil {
			return // decided before (a retry that reached another replica): the first record stands
		}
		err = s.Ingester.RecordDecision(ctx, out.Transaction, d, s.Now())
	}
	if err != nil {
		logf.FromContext(ctx).Error(err, "Recording an authorization decision failed")
	}
}
