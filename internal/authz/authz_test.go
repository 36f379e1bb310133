package authz

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/rules"
	"github.com/cardplane/cardplane/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

func newCard(t *testing.T, labels map[string]string) *cardsv1alpha1.Card {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "authz-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return newCardIn(t, ns.Name, "C1", labels)
}

// newCardIn creates an active card in namespace ns.
func newCardIn(t *testing.T, ns, id string, labels map[string]string) *cardsv1alpha1.Card {
	t.Helper()
	ctx := context.Background()
	card := &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "upay-main-" + strings.ToLower(id), Labels: labels},
		Spec: cardsv1alpha1.CardSpec{EndpointRef: cardsv1alpha1.NamespacedObjectReference{Namespace: ns, Name: "upay-main"},
			Provider: cardsv1alpha1.ProviderUPay, ProviderCardID: id}}
	if err := env.Client.Create(ctx, card); err != nil {
		t.Fatal(err)
	}
	before := card.DeepCopy()
	card.Status.Phase = cardsv1alpha1.CardActive
	if err := env.Client.Status().Patch(ctx, card, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	return card
}

func mustParse(t *testing.T, ns, yaml string) *rules.RuleSet {
	t.Helper()
	rs, err := rules.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	rs.Name, rs.Version = ns+"/card-rules", ns+"/card-rules@1"
	return rs
}

func usd(v string) rules.Transaction {
	return rules.Transaction{Amount: cardsv1alpha1.Money{Value: cardsv1alpha1.Decimal(v), Currency: "USD"}, MCC: "5814"}
}

// TestTwoReplicasNeverApprovePastTheLimit: two authorizers with their own API clients (two receiver replicas)
// answer 60 concurrent 7.00 USD authorizations for one card under a 100.00 USD daily limit.
func TestTwoReplicasNeverApprovePastTheLimit(t *testing.T) {
	card := newCard(t, nil)
	store := &Store{}
	store.Set(card.Namespace, "card-rules", mustParse(t, card.Namespace, `
rules:
- name: daily
  reason: SPEND_LIMIT_DAILY
  spend: {window: Daily, maxAmount: "100.00", currency: USD}
`))
	var replicas []*Authorizer
	for i := 0; i < 2; i++ {
		c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
		if err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, &Authorizer{Store: store, Client: c, APIReader: c, Now: time.Now})
	}
	var approved, declined atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			a := replicas[i%2]
			stale := card.DeepCopy() // what a replica's cache might hold: the card before any approval
			tx := usd("7.00")
			tx.ID, tx.AuthorizationID = fmt.Sprintf("t-%d", i), fmt.Sprintf("a-%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			switch d := a.Decide(ctx, stale, tx); {
			case d.Outcome == cardsv1alpha1.DecisionApproved:
				approved.Add(1)
			case d.Reason == "SPEND_LIMIT_DAILY":
				declined.Add(1)
			default:
				t.Errorf("authorization %d: unexpected decision %+v", i, d)
			}
		}(i)
	}
	wg.Wait()
	if approved.Load() != 14 || declined.Load() != 46 {
		t.Errorf("approved %d, declined %d; want exactly 14 approvals (14 x 7.00 <= 100.00 < 15 x 7.00)", approved.Load(), declined.Load())
	}
	got := &cardsv1alpha1.Card{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(card), got); err != nil {
		t.Fatal(err)
	}
	amount, count := rules.Current(got.Status.Spend, cardsv1alpha1.SpendDaily, "USD", time.Now(), time.UTC)
	if amount.String() != "98" || count != 14 {
		t.Errorf("ledger says %s USD in %d authorizations, want 98 in 14", amount, count)
	}
}

// TestRetriedAuthorizationIsCountedOnce: the same authorization ID twice adds to the ledger once.
func TestRetriedAuthorizationIsCountedOnce(t *testing.T) {
	card := newCard(t, nil)
	store := &Store{}
	store.Set(card.Namespace, "card-rules", mustParse(t, card.Namespace, `
rules:
- name: daily
  reason: SPEND_LIMIT_DAILY
  spend: {window: Daily, maxAmount: "10.00", currency: USD}
`))
	a := &Authorizer{Store: store, Client: env.Client, APIReader: env.Client, Now: time.Now}
	tx := usd("6.00")
	tx.ID, tx.AuthorizationID = "t-1", "a-1"
	for i := 0; i < 2; i++ {
		fresh := &cardsv1alpha1.Card{}
		_ = env.Client.Get(context.Background(), client.ObjectKeyFromObject(card), fresh)
		if d := a.Decide(context.Background(), fresh, tx); d.Outcome != cardsv1alpha1.DecisionApproved {
			t.Fatalf("attempt %d: %+v", i, d)
		}
	}
	got := &cardsv1alpha1.Card{}
	_ = env.Client.Get(context.Background(), client.ObjectKeyFromObject(card), got)
	if amount, count := rules.Current(got.Status.Spend, cardsv1alpha1.SpendDaily, "USD", time.Now(), time.UTC); amount.String() != "6" || count != 1 {
		t.Errorf("ledger %s / %d after a retried authorization, want 6 / 1", amount, count)
	}
}

// TestDeadlineAnswersStandIn: a slow dependency makes the budget run out; the stand-in decision is answered
// at the deadline with reason STAND_IN_TIMEOUT.
func TestDeadlineAnswersStandIn(t *testing.T) {
	card := newCard(t, nil)
	store := &Store{}
	store.Set(card.Namespace, "card-rules", mustParse(t, card.Namespace, `
standInDecision: approve
rules:
- name: gambling
  reason: BLOCKED_MCC
  mcc: {block: ["7995"]}
`))
	a := &Authorizer{Store: store, Client: env.Client, APIReader: env.Client, Now: time.Now,
		slow: func(ctx context.Context) {
			select {
			case <-time.After(3 * time.Second):
			case <-ctx.Done():
			}
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	d := a.Decide(ctx, card, usd("5.00"))
	if took := time.Since(start); took > time.Second {
		t.Errorf("decision took %s with a 200ms budget", took)
	}
	if d.Outcome != cardsv1alpha1.DecisionApproved || d.Reason != cardsv1alpha1.DecisionStandInTimeout || d.RuleSetVersion == "" {
		t.Errorf("decision at the deadline = %+v, want the stand-in (approve) with STAND_IN_TIMEOUT", d)
	}
}

// TestUngovernedCardsAreDeclined: a card no rule set governs is declined (NO_RULE_SET), and approved only where
// a human configured that. (It was approved before.)
func TestUngovernedCardsAreDeclined(t *testing.T) {
	card := newCard(t, map[string]string{"team": "x"})
	store := &Store{}
	store.Set(card.Namespace, "other-team", mustParse(t, card.Namespace, "selector: {matchLabels: {team: growth}}\nrules: []\n"))
	a := &Authorizer{Store: store, Client: env.Client, APIReader: env.Client, Now: time.Now}
	if d := a.Decide(context.Background(), card, usd("5.00")); d.Outcome != cardsv1alpha1.DecisionDeclined || d.Reason != cardsv1alpha1.DecisionNoRuleSet {
		t.Errorf("without a rule set: %+v, want declined NO_RULE_SET", d)
	}
	a.Ungoverned = cardsv1alpha1.DecisionApproved
	if d := a.Decide(context.Background(), card, usd("5.00")); d.Outcome != cardsv1alpha1.DecisionApproved || d.Reason != cardsv1alpha1.DecisionNoRuleSet {
		t.Errorf("configured to approve ungoverned cards: %+v", d)
	}
}

// TestInvalidRuleSetDeclinesTheCardsItWouldGovern: a broken rule set with no good version in force declines the
// cards its selector matches (RULE_SET_INVALID), even where another set would approve them; a good version, once
// held, stays in force over a broken one.
func TestInvalidRuleSetDeclinesTheCardsItWouldGovern(t *testing.T) {
	growth := newCard(t, map[string]string{"team": "growth"})
	ops := newCardIn(t, growth.Namespace, "C2", map[string]string{"team": "ops"})
	ns := growth.Namespace
	store := &Store{}
	a := &Authorizer{Store: store, Client: env.Client, APIReader: env.Client, Now: time.Now}
	store.Set(ns, "everyone", mustParse(t, ns, "defaultDecision: approve\nrules: []\n"))
	broken := "selector: {matchLabels: {team: growth}}\nrules:\n- name: x\n  reason: X\n  condition: 'transaction.('\n"
	kept := store.SetInvalid(ns, "growth-limits", &Invalid{Name: ns + "/growth-limits", Version: ns + "/growth-limits@7",
		Selector: rules.SelectorOf([]byte(broken)), Message: "line 5: ..."})
	if kept != nil {
		t.Fatalf("a good version is reported kept: %v", kept.Version)
	}
	if d := a.Decide(context.Background(), growth, usd("5.00")); d.Outcome != cardsv1alpha1.DecisionDeclined ||
		d.Reason != cardsv1alpha1.DecisionRuleSetInvalid || d.RuleSetVersion != ns+"/growth-limits@7" {
		t.Errorf("a card the broken set governs: %+v, want declined RULE_SET_INVALID", d)
	}
	if d := a.Decide(context.Background(), ops, usd("5.00")); d.Outcome != cardsv1alpha1.DecisionApproved {
		t.Errorf("a card the broken set does not govern: %+v", d)
	}
	store.Set(ns, "growth-limits", mustParse(t, ns, "selector: {matchLabels: {team: growth}}\nrules: []\n"))
	if kept := store.SetInvalid(ns, "growth-limits", &Invalid{Selector: labels.Everything()}); kept == nil {
		t.Fatal("a broken version replaced the good one")
	}
	if d := a.Decide(context.Background(), growth, usd("5.00")); d.Outcome != cardsv1alpha1.DecisionApproved {
		t.Errorf("the good version in force: %+v", d)
	}
}

// TestSettleOnce: whichever of the result and the deadline settles first is the answer, and stays it.
func TestSettleOnce(t *testing.T) {
	result := cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionDeclined, Reason: "BLOCKED_MCC"}}
	standIn := cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionApproved, Reason: cardsv1alpha1.DecisionStandInTimeout}}
	p := &pending{}
	if got, won := p.settle(result); !won || got.Reason != "BLOCKED_MCC" {
		t.Fatalf("first settle: %+v %v", got, won)
	}
	if got, won := p.settle(standIn); won || got.Reason != "BLOCKED_MCC" {
		t.Errorf("the deadline after a ready result answered %+v (won %v), want the result", got, won)
	}
}

// slowLedger is an API client whose status writes commit, then take delay to answer, and answer the caller's
// context error if it ended meanwhile: a slow API server as a caller with a deadline sees it.
type slowLedger struct {
	client.Client
	delay time.Duration
}

func (s slowLedger) Status() client.SubResourceWriter { return slowWriter{s.Client.Status(), s.delay} }

type slowWriter struct {
	client.SubResourceWriter
	delay time.Duration
}

func (w slowWriter) Patch(ctx context.Context, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
	err := w.SubResourceWriter.Patch(ctx, obj, p, opts...)
	select {
	case <-time.After(w.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return err
}

func ledger(t *testing.T, card *cardsv1alpha1.Card) (string, int64) {
	t.Helper()
	got := &cardsv1alpha1.Card{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(card), got); err != nil {
		t.Fatal(err)
	}
	amount, count := rules.Current(got.Status.Spend, cardsv1alpha1.SpendDaily, "USD", time.Now(), time.UTC)
	return amount.String(), count
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// TestStandInApprovalIsCounted: an approval answered by the stand-in at the deadline is added to the ledger
// afterwards, so the next authorization sees it. (It was never counted before: a burst that timed out was
// approved without limit.)
func TestStandInApprovalIsCounted(t *testing.T) {
	card := newCard(t, nil)
	store := &Store{}
	store.Set(card.Namespace, "card-rules", mustParse(t, card.Namespace, `
standInDecision: approve
rules:
- name: daily
  reason: SPEND_LIMIT_DAILY
  spend: {window: Daily, maxAmount: "100.00", currency: USD}
`))
	a := &Authorizer{Store: store, Client: env.Client, APIReader: env.Client, Now: time.Now,
		slow: func(context.Context) { time.Sleep(500 * time.Millisecond) }}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	tx := usd("60.00")
	tx.ID, tx.AuthorizationID = "t-standin", "a-standin"
	if d := a.Decide(ctx, card, tx); d.Outcome != cardsv1alpha1.DecisionApproved || d.Reason != cardsv1alpha1.DecisionStandInTimeout {
		t.Fatalf("answer %+v, want the approving stand-in", d)
	}
	eventually(t, "the stand-in approval is in the ledger", func() bool { amount, n := ledger(t, card); return amount == "60" && n == 1 })
	a.slow = nil
	next := usd("50.00")
	next.ID, next.AuthorizationID = "t-next", "a-next"
	if d := a.Decide(context.Background(), card, next); d.Outcome != cardsv1alpha1.DecisionDeclined || d.Reason != "SPEND_LIMIT_DAILY" {
		t.Errorf("the next authorization (60 + 50 > 100): %+v, want SPEND_LIMIT_DAILY", d)
	}
}

// TestCommittedApprovalUnderADecliningStandInIsTakenBack: a ledger write that commits but answers after the
// deadline leaves the provider with the declining stand-in; the approval is then taken back, so a declined
// transaction does not use up the limit. (Before, it stayed counted.)
func TestCommittedApprovalUnderADecliningStandInIsTakenBack(t *testing.T) {
	card := newCard(t, nil)
	store := &Store{}
	store.Set(card.Namespace, "card-rules", mustParse(t, card.Namespace, `
rules:
- name: daily
  reason: SPEND_LIMIT_DAILY
  spend: {window: Daily, maxAmount: "100.00", currency: USD}
`))
	slow := slowLedger{Client: env.Client, delay: 700 * time.Millisecond}
	a := &Authorizer{Store: store, Client: slow, APIReader: env.Client, Now: time.Now}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	tx := usd("80.00")
	tx.ID, tx.AuthorizationID = "t-late", "a-late"
	if d := a.Decide(ctx, card, tx); d.Outcome != cardsv1alpha1.DecisionDeclined || d.Reason != cardsv1alpha1.DecisionStandInTimeout {
		t.Fatalf("answer %+v, want the declining stand-in", d)
	}
	eventually(t, "the late approval is taken back", func() bool { amount, n := ledger(t, card); return amount == "0" && n == 0 })
	a.Client = env.Client
	if d := a.Decide(context.Background(), card, usd("90.00")); d.Outcome != cardsv1alpha1.DecisionApproved {
		t.Errorf("90.00 after a declined 80.00: %+v, want approved (the declined one must not use up the limit)", d)
	}
}

// randomSlowLedger delays some status writes past the decision budget (they still commit), as a loaded API
// server does.
type randomSlowLedger struct {
	client.Client
	delay time.Duration
	share float64 // of writes delayed
	rng   *rand.Rand
	mu    *sync.Mutex
}

func (s randomSlowLedger) Status() client.SubResourceWriter {
	s.mu.Lock()
	slow := s.rng.Float64() < s.share
	s.mu.Unlock()
	if !slow {
		return s.Client.Status()
	}
	return slowWriter{s.Client.Status(), s.delay}
}

// TestLedgerPropertyUnderReplicasAndStandIns: three replicas answer concurrent authorizations of random amounts
// for one card under a daily limit, with a budget that some ledger writes outlast (so stand-ins answer, of
// either kind). Afterwards the ledger holds exactly what was answered approved, and what the rules approved
// never exceeds the limit.
func TestLedgerPropertyUnderReplicasAndStandIns(t *testing.T) {
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	for _, standIn := range []string{"decline", "approve"} {
		t.Run("stand-in "+standIn, func(t *testing.T) {
			card := newCard(t, nil)
			store := &Store{}
			store.Set(card.Namespace, "card-rules", mustParse(t, card.Namespace, "standInDecision: "+standIn+`
rules:
- name: daily
  reason: SPEND_LIMIT_DAILY
  spend: {window: Daily, maxAmount: "100.00", currency: USD}
`))
			var replicas []*Authorizer
			mu := &sync.Mutex{}
			for range 3 {
				c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
				if err != nil {
					t.Fatal(err)
				}
				slow := randomSlowLedger{Client: c, delay: 800 * time.Millisecond, share: 0.2, rng: rand.New(rand.NewSource(rng.Int63())), mu: mu}
				replicas = append(replicas, &Authorizer{Store: store, Client: slow, APIReader: c, Now: time.Now})
			}
			var answered, byRules decimalSum
			var wg sync.WaitGroup
			for i := range 40 {
				cents := 100 + rng.Intn(1900) // 1.00 to 19.99
				arrival := time.Duration(rng.Intn(2000)) * time.Millisecond
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(arrival)
					tx := usd(fmt.Sprintf("%d.%02d", cents/100, cents%100))
					tx.ID, tx.AuthorizationID = fmt.Sprintf("t-%d", i), fmt.Sprintf("a-%d", i)
					ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
					defer cancel()
					d := replicas[i%3].Decide(ctx, card.DeepCopy(), tx)
					if d.Outcome == cardsv1alpha1.DecisionApproved {
						answered.add(cents)
						if d.Reason != cardsv1alpha1.DecisionStandInTimeout {
							byRules.add(cents)
						}
					}
				}()
			}
			wg.Wait()
			want := answered.total()
			eventually(t, fmt.Sprintf("the ledger to hold the %d cents answered approved", want), func() bool {
				amount, _ := ledger(t, card)
				return amount == centsString(want)
			})
			if byRules.total() > 10000 {
				t.Errorf("the rules approved %d cents under a 10000-cent limit", byRules.total())
			}
			if standIn == "decline" && want > 10000 {
				t.Errorf("%d cents approved under a 10000-cent limit with a declining stand-in", want)
			}
			t.Logf("stand-in %s: %d cents answered approved, %d of them by the rules", standIn, want, byRules.total())
		})
	}
}

type decimalSum struct {
	mu    sync.Mutex
	cents int
}

func (d *decimalSum) add(c int) { d.mu.Lock(); d.cents += c; d.mu.Unlock() }

func (d *decimalSum) total() int { d.mu.Lock(); defer d.mu.Unlock(); return d.cents }

// centsString is how rules.Current prints an amount of cents (shopspring decimal, no trailing zeros).
func centsString(c int) string {
	return decimal.New(int64(c), -2).String()
}

// TestAnUnknownCardStatusIsDeclined: a card whose provider status no adapter knows (phase Unknown) is declined
// before any rule runs, even by a set that approves everything: the provider may no longer consider it usable.
// A card whose holder's KYC is not approved is declined by a rule that reads card.kyc.
func TestAnUnknownCardStatusIsDeclined(t *testing.T) {
	card := newCard(t, map[string]string{"team": "growth"})
	store := &Store{}
	store.Set(card.Namespace, "growth", mustParse(t, card.Namespace, `selector: {matchLabels: {team: growth}}
defaultDecision: approve
rules:
- name: kyc-approved
  reason: KYC_NOT_APPROVED
  condition: card.kyc != "Approved"
`))
	a := &Authorizer{Store: store, Client: env.Client, APIReader: env.Client, Now: time.Now}
	card.Status.KYC = &cardsv1alpha1.KYC{State: cardsv1alpha1.KYCApproved}
	if d := a.Decide(context.Background(), card, usd("5.00")); d.Outcome != cardsv1alpha1.DecisionApproved {
		t.Errorf("an Approved holder: %+v, want approved", d)
	}
	card.Status.KYC.State = cardsv1alpha1.KYCPending
	if d := a.Decide(context.Background(), card, usd("5.00")); d.Outcome != cardsv1alpha1.DecisionDeclined || d.Rule != "kyc-approved" {
		t.Errorf("a Pending holder: %+v, want declined by kyc-approved", d)
	}
	card.Status.KYC.State = cardsv1alpha1.KYCApproved
	card.Status.Phase, card.Status.ProviderStatus = cardsv1alpha1.CardUnknown, "HIBERNATING"
	if d := a.Decide(context.Background(), card, usd("5.00")); d.Outcome != cardsv1alpha1.DecisionDeclined || d.Reason != cardsv1alpha1.DecisionCardStatusUnknown {
		t.Errorf("an Unknown card: %+v, want declined CARD_STATUS_UNKNOWN", d)
	}
}
