package authz

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/rules"
)

// FieldOwner of the spend ledger writes.
const FieldOwner = client.FieldOwner("cardplane-authorizer")

var (
	decisionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cardplane_authorization_decisions_total",
		Help: "Authorization decisions by outcome, deciding rule and mode (shadow results are counted with mode shadow).",
	}, []string{"outcome", "rule", "mode"})
	decisionSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "cardplane_authorization_duration_seconds",
		Help:    "Time to decide an authorization, spend ledger write included.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 1.5, 2.5},
	})
)

func init() { metrics.Registry.MustRegister(decisionsTotal, decisionSeconds) }

// Authorizer decides authorizations. Decide never takes longer than its context allows: when the context
// ends first, the stand-in decision of the governing rule set is answered with reason STAND_IN_TIMEOUT.
type Authorizer struct {
	Store *Store
	// Client writes the spend ledger (Card status); APIReader re-reads a card after a conflict.
	Client    client.Client
	APIReader client.Reader
	Now       func() time.Time
	// slow, when set, runs before each evaluation: tests inject a slow dependency with it.
	slow func(context.Context)

	// cards serializes the decisions of one card within this replica (a one-slot channel per card UID), so
	// concurrent requests for a card queue instead of racing to conflicts; other cards stay parallel, and
	// other replicas are kept honest by the resourceVersion precondition.
	cards sync.Map
}

// lock takes the card's slot, or fails when ctx ends first.
func (a *Authorizer) lock(ctx context.Context, card *cardsv1alpha1.Card) (func(), error) {
	v, _ := a.cards.LoadOrStore(card.UID, make(chan struct{}, 1))
	slot := v.(chan struct{})
	select {
	case slot <- struct{}{}:
		return func() { <-slot }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Decide answers one authorization for card.
func (a *Authorizer) Decide(ctx context.Context, card *cardsv1alpha1.Card, tx rules.Transaction) cardsv1alpha1.AuthorizationDecision {
	start := time.Now()
	d := a.decide(ctx, card, tx)
	decisionSeconds.Observe(time.Since(start).Seconds())
	decisionsTotal.WithLabelValues(string(d.Outcome), d.Rule, string(d.Mode)).Inc()
	for _, s := range d.Shadow {
		decisionsTotal.WithLabelValues(string(s.Outcome), s.Rule, string(cardsv1alpha1.RuleShadow)).Inc()
	}
	return d
}

func (a *Authorizer) decide(ctx context.Context, card *cardsv1alpha1.Card, tx rules.Transaction) cardsv1alpha1.AuthorizationDecision {
	sets := a.Store.For(card.Namespace, card.Labels)
	if len(sets) == 0 {
		return cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionApproved, Reason: cardsv1alpha1.DecisionNoRuleSet}}
	}
	standIn := cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: sets[0].StandIn, Reason: cardsv1alpha1.DecisionStandInTimeout},
		RuleSetVersion: sets[0].Version}

	result := make(chan cardsv1alpha1.AuthorizationDecision, 1)
	go func() {
		unlock, err := a.lock(ctx, card)
		if err != nil {
			return // the deadline passed while queued: the stand-in is answered below
		}
		defer unlock()
		result <- a.evaluateAndRecord(ctx, card.DeepCopy(), tx, sets)
	}()
	select {
	case d := <-result:
		return d
	case <-ctx.Done():
		return standIn
	}
}

// evaluateAndRecord evaluates every governing set and, for an approval that counts toward spend limits, adds
// it to the card's ledger under a resourceVersion precondition. On a conflict (another replica approved for
// the same card meanwhile) it re-reads the card and evaluates again, so the limit is checked against what is
// really recorded.
func (a *Authorizer) evaluateAndRecord(ctx context.Context, card *cardsv1alpha1.Card, tx rules.Transaction, sets []*rules.RuleSet) cardsv1alpha1.AuthorizationDecision {
	for {
		if a.slow != nil {
			a.slow(ctx)
		}
		now := a.Now()
		if rules.Counted(card.Status.Spend, tx) {
			// Approved and counted before: a provider retry gets the same answer, and is not counted again.
			return cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionApproved,
				Reason: cardsv1alpha1.DecisionAlreadyApproved}, RuleSetVersion: sets[0].Version}
		}
		d, tz := combine(sets, tx, card, now)
		if d.Outcome != cardsv1alpha1.DecisionApproved || ctx.Err() != nil || len(d.CountsToward) == 0 {
			return d.AuthorizationDecision
		}
		before := card.DeepCopy()
		if card.Status.Spend == nil {
			card.Status.Spend = &cardsv1alpha1.CardSpend{}
		}
		if !rules.Add(card.Status.Spend, d.CountsToward, tx, now, tz) {
			return d.AuthorizationDecision // this authorization was counted already (a provider retry)
		}
		err := a.Client.Status().Patch(ctx, card, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), FieldOwner)
		if err == nil {
			return d.AuthorizationDecision
		}
		if !apierrors.IsConflict(err) || ctx.Err() != nil {
			if ctx.Err() == nil {
				logf.FromContext(ctx).Error(err, "Spend ledger write failed; answering the stand-in decision", "card", klog.KObj(card))
			}
			return cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: sets[0].StandIn, Reason: cardsv1alpha1.DecisionLedgerUnavailable},
				RuleSetVersion: sets[0].Version}
		}
		fresh := &cardsv1alpha1.Card{}
		if err := a.APIReader.Get(ctx, client.ObjectKeyFromObject(card), fresh); err != nil {
			return cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: sets[0].StandIn, Reason: cardsv1alpha1.DecisionLedgerUnavailable},
				RuleSetVersion: sets[0].Version}
		}
		card = fresh
	}
}

func ruleCard(c *cardsv1alpha1.Card) rules.Card {
	rc := rules.Card{Namespace: c.Namespace, Name: c.Name, Labels: c.Labels, Phase: c.Status.Phase, Spend: c.Status.Spend}
	if c.Status.Balance != nil {
		b := c.Status.Balance.Available
		rc.Balance = &b
	}
	return rc
}

// combine evaluates every set: the first set (by name) whose enforce rules decline decides; otherwise the
// first set's default applies. Shadow results of all sets are kept; every set's spend windows are recorded,
// in the time zone of the first set that has spend rules (rule sets for one card should share a time zone).
func combine(sets []*rules.RuleSet, tx rules.Transaction, card *cardsv1alpha1.Card, now time.Time) (rules.Decision, *time.Location) {
	var out rules.Decision
	var tz *time.Location
	var shadow []cardsv1alpha1.RuleResult
	var windows []cardsv1alpha1.SpendWindowKind
	decided := false
	for i, rs := range sets {
		d := rs.Evaluate(tx, ruleCard(card), now)
		shadow = append(shadow, d.Shadow...)
		if tz == nil && len(d.CountsToward) > 0 {
			tz = rs.TimeZone
		}
		for _, w := range d.CountsToward {
			if !containsWindow(windows, w) {
				windows = append(windows, w)
			}
		}
		if decided {
			continue
		}
		if d.Outcome == cardsv1alpha1.DecisionDeclined || i == 0 {
			out = d
			decided = d.Outcome == cardsv1alpha1.DecisionDeclined
		}
	}
	out.Shadow, out.CountsToward = shadow, windows
	if len(out.Shadow) > 32 {
		out.Shadow = out.Shadow[:32]
	}
	return out, tz
}

func containsWindow(ws []cardsv1alpha1.SpendWindowKind, w cardsv1alpha1.SpendWindowKind) bool {
	for _, x := range ws {
		if x == w {
			return true
		}
	}
	return false
}
