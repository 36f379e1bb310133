package authz

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "authz-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	card := &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "upay-main-c1", Labels: labels},
		Spec: cardsv1alpha1.CardSpec{EndpointRef: cardsv1alpha1.NamespacedObjectReference{Namespace: ns.Name, Name: "upay-main"},
			Provider: cardsv1alpha1.ProviderUPay, ProviderCardID: "C1"}}
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

func TestNoRuleSetApproves(t *testing.T) {
	card := newCard(t, map[string]string{"team": "x"})
	a := &Authorizer{Store: &Store{}, Client: env.Client, APIReader: env.Client, Now: time.Now}
	if d := a.Decide(context.Background(), card, usd("5.00")); d.Outcome != cardsv1alpha1.DecisionApproved || d.Reason != cardsv1alpha1.DecisionNoRuleSet {
		t.Errorf("without a rule set: %+v", d)
	}
}
