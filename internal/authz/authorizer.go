package authz

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/rules"
)

// FieldOwner of the spend ledger writes.
const FieldOwner = client.FieldOwner("cardplane-authorizer")

// DefaultLedgerTimeout bounds a ledger write, which is not cut at the decision's deadline: a write cut in flight
// may or may not have committed, and the ledger must know which.
const DefaultLedgerTimeout = 15 * time.Second

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
	ledgerCorrections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cardplane_authorization_ledger_corrections_total",
		Help: "Spend-ledger writes after a stand-in answer (counted: a stand-in approval added; removed: an approval whose write committed after a declining stand-in taken back), by result.",
	}, []string{"action", "result"})
)

func init() { metrics.Registry.MustRegister(decisionsTotal, decisionSeconds, ledgerCorrections) }

// Authorizer decides authorizations. Decide never takes longer than its context allows: when the context ends
// first, the stand-in decision of the governing rule set is answered with reason STAND_IN_TIMEOUT, and the
// ledger is then made to agree with what was answered (a stand-in approval is counted; an approval whose ledger
// write committed after a declining stand-in is taken back).
type Authorizer struct {
	Store *Store
	// Client writes the spend ledger (Card status); APIReader re-reads a card after a conflict.
	Client    client.Client
	APIReader client.Reader
	Now       func() time.Time
	// Ungoverned is the outcome for a card no rule set governs: Declined unless a human configured Approved
	// (cardplane manager --ungoverned-card-decision).
	Ungoverned cardsv1alpha1.DecisionOutcome
	// LedgerTimeout bounds a ledger write (default DefaultLedgerTimeout).
	LedgerTimeout time.Duration
	// slow, when set, runs before each evaluation: tests inject a slow dependency with it.
	slow func(context.Context)

	// locks serialize the decisions of one card within this replica, so concurrent requests for a card queue
	// instead of racing to conflicts; other replicas are kept honest by the resourceVersion precondition.
	locks stripes
}

// Ready reports whether decisions may be answered: every rule set present at start is loaded.
func (a *Authorizer) Ready() bool { return a.Store.Synced() }

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

func declined(reason, version string) cardsv1alpha1.AuthorizationDecision {
	return cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionDeclined, Reason: reason},
		RuleSetVersion: version}
}

func (a *Authorizer) decide(ctx context.Context, card *cardsv1alpha1.Card, tx rules.Transaction) cardsv1alpha1.AuthorizationDecision {
	sets, invalid := a.Store.For(card.Namespace, card.Labels)
	switch {
	case card.Status.Phase == cardsv1alpha1.CardUnknown:
		return declined(cardsv1alpha1.DecisionCardStatusUnknown, "")
	case len(invalid) > 0:
		// A broken rule set with no good version would govern this card: what it meant to allow is unknown.
		return declined(cardsv1alpha1.DecisionRuleSetInvalid, invalid[0].Version)
	case len(sets) == 0:
		if a.Ungoverned == cardsv1alpha1.DecisionApproved {
			return cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionApproved,
				Reason: cardsv1alpha1.DecisionNoRuleSet}}
		}
		return declined(cardsv1alpha1.DecisionNoRuleSet, "")
	}
	p := &pending{result: make(chan cardsv1alpha1.AuthorizationDecision, 1),
		standIn: cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: sets[0].StandIn,
			Reason: cardsv1alpha1.DecisionStandInTimeout}, RuleSetVersion: sets[0].Version}}
	go a.work(card.DeepCopy(), tx, sets, p)
	select {
	case d := <-p.result:
		return d
	case <-ctx.Done():
		// Whichever is settled first is the answer: a result that is ready wins over the deadline.
		ans, _ := p.settle(p.standIn)
		return ans
	}
}

// pending is one decision being made: the worker and the deadline race to settle its answer, once.
type pending struct {
	mu      sync.Mutex
	done    bool
	answer  cardsv1alpha1.AuthorizationDecision
	standIn cardsv1alpha1.AuthorizationDecision
	result  chan cardsv1alpha1.AuthorizationDecision
}

// settle makes d the answer unless one was settled before; it returns the answer and whether d became it.
func (p *pending) settle(d cardsv1alpha1.AuthorizationDecision) (cardsv1alpha1.AuthorizationDecision, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.done {
		p.done, p.answer = true, d
		return d, true
	}
	return p.answer, false
}

// settled is the answer, if one was given.
func (p *pending) settled() (cardsv1alpha1.AuthorizationDecision, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.answer, p.done
}

// work evaluates and records one authorization, off the caller's deadline, then makes the ledger agree with
// the answer given: its own result, or the stand-in if the deadline came first.
func (a *Authorizer) work(card *cardsv1alpha1.Card, tx rules.Transaction, sets []*rules.RuleSet, p *pending) {
	timeout := a.LedgerTimeout
	if timeout <= 0 {
		timeout = DefaultLedgerTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	unlock := a.locks.lock(ctx, card.UID) // advisory: past the timeout the write still has its precondition
	defer unlock()
	if ans, done := p.settled(); done {
		a.correct(ctx, card, tx, sets, ans, nil) // answered at the deadline while queued
		return
	}
	if a.slow != nil {
		a.slow(ctx)
	}
	d, written := a.evaluateAndRecord(ctx, card, tx, sets)
	ans, won := p.settle(d)
	if won {
		p.result <- d
		return
	}
	a.correct(ctx, card, tx, sets, ans, written)
}

// written is an approval this replica wrote to a card's ledger: what it counted toward, for taking it back.
type written struct {
	windows []cardsv1alpha1.SpendWindowKind
	tz      *time.Location
	at      time.Time
}

// correct makes the ledger agree with an answer the worker did not give (the stand-in, at the deadline): a
// stand-in approval is counted, so the next authorization sees it; an approval whose write committed after a
// declining stand-in is taken back, so a declined transaction does not use up the limit.
func (a *Authorizer) correct(ctx context.Context, card *cardsv1alpha1.Card, tx rules.Transaction, sets []*rules.RuleSet,
	answer cardsv1alpha1.AuthorizationDecision, w *written) {
	switch {
	case answer.Outcome == cardsv1alpha1.DecisionApproved && w == nil:
		windows, tz := countsToward(sets)
		if len(windows) == 0 {
			return
		}
		a.adjust(ctx, card, "counted", func(s *cardsv1alpha1.CardSpend, now time.Time) bool {
			return rules.Add(s, windows, tx, now, tz) == nil
		})
	case answer.Outcome == cardsv1alpha1.DecisionDeclined && w != nil:
		a.adjust(ctx, card, "removed", func(s *cardsv1alpha1.CardSpend, _ time.Time) bool {
			return rules.Remove(s, w.windows, tx, w.at, w.tz)
		})
	}
}

// countsToward is every window the governing sets count approvals in, in the time zone of the first set that
// counts any.
func countsToward(sets []*rules.RuleSet) ([]cardsv1alpha1.SpendWindowKind, *time.Location) {
	var out []cardsv1alpha1.SpendWindowKind
	var tz *time.Location
	for _, rs := range sets {
		ws := rs.CountsToward()
		if tz == nil && len(ws) > 0 {
			tz = rs.TimeZone
		}
		for _, w := range ws {
			if !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
	}
	return out, tz
}

// adjust changes a card's ledger after the fact, under the resourceVersion precondition, re-reading on
// conflict. mutate reports whether it changed anything.
func (a *Authorizer) adjust(ctx context.Context, card *cardsv1alpha1.Card, action string, mutate func(*cardsv1alpha1.CardSpend, time.Time) bool) {
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		fresh := &cardsv1alpha1.Card{}
		if err := a.APIReader.Get(ctx, client.ObjectKeyFromObject(card), fresh); err != nil {
			return err
		}
		before := fresh.DeepCopy()
		if fresh.Status.Spend == nil {
			fresh.Status.Spend = &cardsv1alpha1.CardSpend{}
		}
		if !mutate(fresh.Status.Spend, a.Now()) {
			return nil
		}
		return a.Client.Status().Patch(ctx, fresh, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), FieldOwner)
	})
	result := "done"
	if err != nil {
		result = "failed"
		logf.FromContext(ctx).Error(err, "Making the spend ledger agree with a stand-in answer failed", "card", klog.KObj(card), "action", action)
	}
	ledgerCorrections.WithLabelValues(action, result).Inc()
}

// evaluateAndRecord evaluates every governing set and, for an approval that counts toward spend limits, adds
// it to the card's ledger under a resourceVersion precondition. On a conflict (another replica approved for
// the same card meanwhile) it re-reads the card and evaluates again, so the limit is checked against what is
// really recorded. committed reports that this call's ledger write is in the API server.
func (a *Authorizer) evaluateAndRecord(ctx context.Context, card *cardsv1alpha1.Card, tx rules.Transaction, sets []*rules.RuleSet) (cardsv1alpha1.AuthorizationDecision, *written) {
	for {
		now := a.Now()
		if rules.Counted(card.Status.Spend, tx) {
			// Approved and counted before: a provider retry of the same request gets the same answer.
			d := cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionApproved,
				Reason: cardsv1alpha1.DecisionAlreadyApproved}, RuleSetVersion: sets[0].Version}
			return d, nil
		}
		d, tz := combine(sets, tx, card, now)
		if d.Outcome != cardsv1alpha1.DecisionApproved || len(d.CountsToward) == 0 {
			return d.AuthorizationDecision, nil
		}
		before := card.DeepCopy()
		if card.Status.Spend == nil {
			card.Status.Spend = &cardsv1alpha1.CardSpend{}
		}
		if err := rules.Add(card.Status.Spend, d.CountsToward, tx, now, tz); err != nil {
			if errors.Is(err, rules.ErrLedgerFull) {
				return declined(cardsv1alpha1.DecisionLedgerFull, d.RuleSetVersion), nil
			}
			return d.AuthorizationDecision, nil // counted already (a retry that raced this one)
		}
		err := a.Client.Status().Patch(ctx, card, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), FieldOwner)
		if err == nil {
			return d.AuthorizationDecision, &written{windows: d.CountsToward, tz: tz, at: now}
		}
		if !apierrors.IsConflict(err) {
			logf.FromContext(ctx).Error(err, "Spend ledger write failed; answering the stand-in decision", "card", klog.KObj(card))
			return cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: sets[0].StandIn,
				Reason: cardsv1alpha1.DecisionLedgerUnavailable}, RuleSetVersion: sets[0].Version}, nil
		}
		fresh := &cardsv1alpha1.Card{}
		if err := a.APIReader.Get(ctx, client.ObjectKeyFromObject(card), fresh); err != nil {
			return cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: sets[0].StandIn,
				Reason: cardsv1alpha1.DecisionLedgerUnavailable}, RuleSetVersion: sets[0].Version}, nil
		}
		card = fresh
	}
}

func ruleCard(c *cardsv1alpha1.Card) rules.Card {
	rc := rules.Card{Namespace: c.Namespace, Name: c.Name, Labels: c.Labels, Phase: c.Status.Phase, Spend: c.Status.Spend}
	if c.Status.KYC != nil {
		rc.KYC = c.Status.KYC.State
	}
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
			if !slices.Contains(windows, w) {
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

// stripes is a fixed set of one-slot channels, one per hash of a card UID: bounded memory whatever the number
// of cards, and the decisions of one card never run at once on this replica.
type stripes struct {
	once  sync.Once
	slots []chan struct{}
}

const stripeCount = 1024

// lock takes the card's slot; it returns a no-op unlock when ctx ends first.
func (s *stripes) lock(ctx context.Context, uid types.UID) func() {
	s.once.Do(func() {
		s.slots = make([]chan struct{}, stripeCount)
		for i := range s.slots {
			s.slots[i] = make(chan struct{}, 1)
		}
	})
	h := fnv.New32a()
	_, _ = h.Write([]byte(uid))
	slot := s.slots[h.Sum32()%stripeCount]
	select {
	case slot <- struct{}{}:
		return func() { <-slot }
	case <-ctx.Done():
		return func() {}
	}
}
