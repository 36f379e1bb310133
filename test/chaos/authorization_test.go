package chaos

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/controllers"
	"github.com/cardplane/cardplane/internal/authz"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver"
	"github.com/cardplane/cardplane/webhookserver/adapters/upay"
	"github.com/cardplane/cardplane/webhookserver/spool"
)

// The hostile authorization suite: randomized scenarios in which the money path used to approve what the rules
// would decline. Expectations are computed here, from the rules each scenario means and what was answered
// before, never by the code under test. It reports one figure, which must be 0.

// replica is one receiver replica deciding authorizations: its own manager, rule-set store and API client.
type replica struct {
	url   string
	store *authz.Store
	mgr   ctrl.Manager
	stop  context.CancelFunc
}

// sees waits until the replica's cache shows ep Ready at its generation, as the receiver requires.
func (r *replica) sees(t *testing.T, ep *cardsv1alpha1.WebhookEndpoint) {
	t.Helper()
	if !waitFor(t, 30*time.Second, "the replica to see the endpoint Ready", ready(r.mgr.GetClient(), ep)) {
		got := &cardsv1alpha1.WebhookEndpoint{} // what the replica saw last, so that a timeout says why
		err := r.mgr.GetClient().Get(context.Background(), client.ObjectKeyFromObject(ep), got)
		t.Logf("replica's view of %s: read error %v, generation %d, conditions %+v", ep.Name, err, got.Generation, got.Status.Conditions)
	}
}

// startReplica runs a manager with the endpoint and rule-set reconcilers and a receiver that decides with
// budget, on cfg (a slow API server is a cfg whose transport delays writes).
func startReplica(t *testing.T, cfg *rest.Config, name string, budget time.Duration) *replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{store: &authz.Store{}, stop: cancel}
	r.mgr, r.url = startReceiver(t, ctx, cfg, name, true, func(mgr ctrl.Manager, receiver *webhookserver.Server) {
		if err := (&controllers.RuleSetReconciler{Client: mgr.GetClient(), Store: r.store, Recorder: mgr.GetEventRecorder(name)}).SetupWithManager(mgr); err != nil {
			t.Fatal(err)
		}
		receiver.AuthorizationBudget = budget
		receiver.Authorizer = &authz.Authorizer{Store: r.store, Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Now: time.Now}
	})
	waitFor(t, 30*time.Second, "the replica's first rule-set sync", r.store.Synced)
	return r
}

// hostileEndpoint creates a namespace with a UPay endpoint that labels its cards team: growth (when labelled).
func hostileEndpoint(t *testing.T, prefix string, labelled bool) *cardsv1alpha1.WebhookEndpoint {
	t.Helper()
	ep := newUPayEndpoint(t, prefix)
	if labelled {
		before := ep.DeepCopy()
		ep.Spec.CardLabels = map[string]cardsv1alpha1.LabelValue{"team": "growth"}
		if err := env.Client.Patch(context.Background(), ep, client.MergeFrom(before)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "the endpoint Ready", ready(env.Client, ep))
	return ep
}

// putRuleSet creates or replaces the labelled ConfigMap name in namespace with rules.yaml src.
func putRuleSet(t *testing.T, namespace, name, src string) {
	t.Helper()
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name,
		Labels: map[string]string{cardsv1alpha1.LabelRuleSet: "true"}}, Data: map[string]string{cardsv1alpha1.RuleSetKey: src}}
	if err := env.Client.Create(ctx, cm); err == nil {
		return
	}
	updateConfigMap(t, client.ObjectKeyFromObject(cm), func(got *corev1.ConfigMap) { got.Data, got.Labels = cm.Data, cm.Labels })
}

// updateConfigMap applies change to the ConfigMap at key, read again after a conflict: the replicas write their
// state annotation on rule set ConfigMaps, so a version read by the test can be moved under it at any time.
func updateConfigMap(t *testing.T, key client.ObjectKey, change func(*corev1.ConfigMap)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm := &corev1.ConfigMap{}
		if err := env.Client.Get(context.Background(), key, cm); err != nil {
			return err
		}
		change(cm)
		return env.Client.Update(context.Background(), cm)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// inForce waits until a replica holds rule set name at the ConfigMap's current version (good or invalid). The
// version is read again on every poll: the replicas' own state annotation moves the ConfigMap's resourceVersion
// once after each change, and a version read before that write would be held only for a moment.
func inForce(t *testing.T, r *replica, namespace, name string, good bool) {
	t.Helper()
	list := &cardsv1alpha1.WebhookEndpointList{}
	if err := env.Client.List(context.Background(), list, client.InNamespace(namespace)); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		r.sees(t, &list.Items[i])
	}
	waitFor(t, 30*time.Second, "rule set "+namespace+"/"+name+" in force at the ConfigMap's version", func() bool {
		cm := &corev1.ConfigMap{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, cm); err != nil {
			t.Fatal(err)
		}
		version := namespace + "/" + name + "@" + cm.ResourceVersion
		if good {
			rs := r.store.Get(namespace, name)
			return rs != nil && rs.Version == version
		}
		_, invalid := r.store.For(namespace, map[string]string{"team": "growth"})
		return len(invalid) > 0 && invalid[0].Version == version
	})
}

// authorization is one UPay CC_AUTHORIZATION.
type authorization struct {
	card, id, amount, currency, mcc string
}

// authorize sends a as UPay would and returns its answer: true for approve. A refused request fails the test.
func authorize(t *testing.T, url string, ep *cardsv1alpha1.WebhookEndpoint, a authorization) (bool, time.Duration) {
	t.Helper()
	if a.currency == "" {
		a.currency = "USD"
	}
	body := fmt.Sprintf(`{"event":"CC_AUTHORIZATION","orderNo":"O-%s","timestamp":%d,"detail":{"cardId":%q,"amount":%q,"currency":%q,"merchantMcc":%q,"transactionId":%q,"authorizationId":%q,"transactionChannel":"ECOMMERCE"}}`,
		a.id+"-"+a.amount, time.Now().UnixMilli(), a.card, a.amount, a.currency, a.mcc, "T-"+a.id, "A-"+a.id)
	h, wire, err := upay.Encode(&endpointconfig.Resolved{Endpoint: ep, SigningKey: []byte(upayKey)}, []byte(body), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, url+"/webhooks/"+ep.Namespace+"/"+ep.Name, strings.NewReader(string(wire)))
	req.Header = h
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("authorization %s: %v", a.id, err)
	}
	answer, _ := io.ReadAll(resp.Body)
	took := time.Since(start)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || (string(answer) != "approve" && string(answer) != "decline") {
		t.Fatalf("authorization %s answered %d %q", a.id, resp.StatusCode, answer)
	}
	return string(answer) == "approve", took
}

// tally counts decisions and wrong approvals per scenario.
type tally struct {
	mu        sync.Mutex
	decisions map[string]int
	approvals map[string]int
	wrong     map[string][]string
}

func newTally() *tally {
	return &tally{decisions: map[string]int{}, approvals: map[string]int{}, wrong: map[string][]string{}}
}

// record notes one answer: approved while shouldDecline is an approval a rule should have declined.
func (ty *tally) record(scenario string, approved, shouldDecline bool, what string) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	ty.decisions[scenario]++
	if approved {
		ty.approvals[scenario]++
		if shouldDecline {
			ty.wrong[scenario] = append(ty.wrong[scenario], what)
		}
	}
}

func (ty *tally) report(t *testing.T, seed int64) {
	t.Helper()
	names := make([]string, 0, len(ty.decisions))
	for n := range ty.decisions {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	total, wrong := 0, 0
	fmt.Fprintf(&b, "hostile authorization suite (seed %d)\n%-44s %9s %9s %s\n", seed, "scenario", "decisions", "approvals", "approvals that should have been declined")
	for _, n := range names {
		fmt.Fprintf(&b, "%-44s %9d %9d %d\n", n, ty.decisions[n], ty.approvals[n], len(ty.wrong[n]))
		total += ty.decisions[n]
		wrong += len(ty.wrong[n])
	}
	fmt.Fprintf(&b, "%d scenarios, %d decisions; approvals that should have been declined: %d\n", len(names), total, wrong)
	t.Log("\n" + b.String())
	for _, n := range names {
		for _, w := range ty.wrong[n] {
			t.Errorf("%s: approved %s", n, w)
		}
	}
}

func seedFromEnv() int64 {
	if s, err := strconv.ParseInt(os.Getenv("CHAOS_SEED"), 10, 64); err == nil {
		return s
	}
	return time.Now().UnixNano()
}

const blockingRules = `
selector: {matchLabels: {team: growth}}
defaultDecision: approve
standInDecision: %s
rules:
- name: block-gambling
  reason: BLOCKED_MCC
  mcc: {block: ["7995"]}
- name: max-per-authorization
  reason: AMOUNT_LIMIT
  amount: {max: "500.00", currency: USD}
- name: daily
  reason: SPEND_LIMIT_DAILY
  spend: {window: Daily, maxAmount: "1000.00", currency: USD}
`

// intent is what blockingRules decide, given what the card has been approved today (cents).
func intent(mcc string, cents, spent int) bool {
	return mcc == "7995" || cents > 50000 || spent+cents > 100000
}

// TestHostileAuthorization runs every scenario and reports approvals that should have been declined.
func TestHostileAuthorization(t *testing.T) {
	seed := seedFromEnv()
	rng := rand.New(rand.NewSource(seed))
	ty := newTally()
	defer ty.report(t, seed)
	for _, s := range []struct {
		name string
		run  func(*testing.T, *rand.Rand, *tally)
	}{
		{"first sight", hostileFirstSight},
		{"broken rule set before and after a restart", hostileBrokenRuleSet},
		{"rule set deleted or unlabelled", hostileRemovedRuleSet},
		{"reused IDs with other amounts", hostileReusedIDs},
		{"slow ledger, each stand-in", hostileSlowLedger},
		{"two replicas racing on one card", hostileRacingReplicas},
		{"many currencies", hostileManyCurrencies},
	} {
		r := rand.New(rand.NewSource(rng.Int63()))
		t.Run(s.name, func(t *testing.T) { s.run(t, r, ty) })
	}
}

// hostileFirstSight: cards created by their first authorization are governed by the rule set that selects the
// endpoint's cardLabels; an endpoint without cardLabels has ungoverned cards, which are declined.
func hostileFirstSight(t *testing.T, rng *rand.Rand, ty *tally) {
	r := startReplica(t, env.Config, "first-sight", 2*time.Second)
	defer r.stop()
	ep := hostileEndpoint(t, "first-sight", true)
	bare := hostileEndpoint(t, "ungoverned", false)
	putRuleSet(t, ep.Namespace, "card-rules", fmt.Sprintf(blockingRules, "decline"))
	putRuleSet(t, bare.Namespace, "card-rules", fmt.Sprintf(blockingRules, "decline")) // selects team: growth only
	inForce(t, r, ep.Namespace, "card-rules", true)
	inForce(t, r, bare.Namespace, "card-rules", true)
	for i := range 12 {
		mcc := []string{"7995", "5814", "5411"}[rng.Intn(3)]
		cents := 100 + rng.Intn(60000)
		a := authorization{card: fmt.Sprintf("FS%03d", i), id: fmt.Sprintf("fs-%d", i), amount: fmt.Sprintf("%d.%02d", cents/100, cents%100), mcc: mcc}
		approved, _ := authorize(t, r.url, ep, a)
		ty.record("first sight (cardLabels)", approved, intent(mcc, cents, 0), fmt.Sprintf("%s %s mcc %s", a.card, a.amount, mcc))
		a.card = "U" + a.card
		approved, _ = authorize(t, r.url, bare, a)
		ty.record("first sight, ungoverned", approved, true, a.card)
	}
}

// hostileBrokenRuleSet: a replica that holds a good version keeps it over a broken one; a replica started
// after the broken version was applied (a restart) declines the cards it selects.
func hostileBrokenRuleSet(t *testing.T, rng *rand.Rand, ty *tally) {
	first := startReplica(t, env.Config, "broken-1", 2*time.Second)
	ep := hostileEndpoint(t, "broken", true)
	putRuleSet(t, ep.Namespace, "card-rules", fmt.Sprintf(blockingRules, "decline"))
	inForce(t, first, ep.Namespace, "card-rules", true)
	putRuleSet(t, ep.Namespace, "card-rules", fmt.Sprintf(blockingRules, "decline")+"- name: broken\n  reason: X\n  condition: 'transaction.('\n")
	time.Sleep(time.Second) // the first replica sees the broken version and keeps its good one
	for i := range 6 {
		mcc := []string{"7995", "5814"}[rng.Intn(2)]
		a := authorization{card: fmt.Sprintf("BR%03d", i), id: fmt.Sprintf("br-%d", i), amount: "10.00", mcc: mcc}
		approved, _ := authorize(t, first.url, ep, a)
		ty.record("broken rule set, good version kept", approved, intent(mcc, 1000, 0), a.card+" mcc "+mcc)
	}
	first.stop()
	second := startReplica(t, env.Config, "broken-2", 2*time.Second) // the restart
	defer second.stop()
	inForce(t, second, ep.Namespace, "card-rules", false)
	for i := range 6 {
		mcc := []string{"7995", "5814"}[rng.Intn(2)]
		a := authorization{card: fmt.Sprintf("BR%03d", i), id: fmt.Sprintf("br2-%d", i), amount: "10.00", mcc: mcc}
		approved, _ := authorize(t, second.url, ep, a)
		ty.record("broken rule set after a restart", approved, true, a.card+": what the broken set allows is unknown")
	}
}

// hostileRemovedRuleSet: deleting the ConfigMap, or removing its label, leaves its cards ungoverned: declined.
func hostileRemovedRuleSet(t *testing.T, rng *rand.Rand, ty *tally) {
	r := startReplica(t, env.Config, "removed", 2*time.Second)
	defer r.stop()
	for _, how := range []string{"deleted", "unlabelled"} {
		ep := hostileEndpoint(t, how, true)
		putRuleSet(t, ep.Namespace, "card-rules", fmt.Sprintf(blockingRules, "decline"))
		inForce(t, r, ep.Namespace, "card-rules", true)
		key := client.ObjectKey{Namespace: ep.Namespace, Name: "card-rules"}
		if how == "deleted" {
			if err := env.Client.Delete(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}); err != nil {
				t.Fatal(err)
			}
		} else {
			updateConfigMap(t, key, func(cm *corev1.ConfigMap) { delete(cm.Labels, cardsv1alpha1.LabelRuleSet) })
		}
		waitFor(t, 30*time.Second, "the rule set out of force", func() bool { return r.store.Get(ep.Namespace, "card-rules") == nil })
		for i := range 4 {
			a := authorization{card: fmt.Sprintf("RM%d", i), id: fmt.Sprintf("%s-%d", how, i), amount: fmt.Sprintf("%d.00", 1+rng.Intn(50)), mcc: "5814"}
			approved, _ := authorize(t, r.url, ep, a)
			ty.record("rule set "+how, approved, true, a.card+": no rule governs it")
		}
	}
}

// hostileReusedIDs: a request that reuses an authorization ID with a larger amount is a new authorization: it
// is evaluated against the limit with the first one counted.
func hostileReusedIDs(t *testing.T, rng *rand.Rand, ty *tally) {
	r := startReplica(t, env.Config, "reused", 2*time.Second)
	defer r.stop()
	ep := hostileEndpoint(t, "reused", true)
	putRuleSet(t, ep.Namespace, "card-rules", fmt.Sprintf(blockingRules, "decline"))
	inForce(t, r, ep.Namespace, "card-rules", true)
	for i := range 6 {
		card := fmt.Sprintf("RU%d", i)
		spent := 0
		for j, cents := range []int{30000 + rng.Intn(20000), 30000 + rng.Intn(20000), 30000 + rng.Intn(20000)} {
			a := authorization{card: card, id: card + "-same", amount: fmt.Sprintf("%d.%02d", cents/100, cents%100), mcc: "5814"}
			approved, _ := authorize(t, r.url, ep, a)
			should := intent("5814", cents, spent)
			ty.record("reused IDs with other amounts", approved, should, fmt.Sprintf("%s try %d: %s after %d cents", card, j, a.amount, spent))
			if approved {
				spent += cents
			}
		}
	}
}

// slowWrites delays the writes matching match by delay (they then commit), as a loaded API server answers.
func slowWrites(cfg *rest.Config, delay func() time.Duration, match func(*http.Request) bool) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			if req.Method != http.MethodGet && match(req) {
				select {
				case <-time.After(delay()):
				case <-req.Context().Done():
					return nil, req.Context().Err()
				}
			}
			return rt.RoundTrip(req)
		})
	}
	return cfg
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// hostileSlowLedger: some ledger writes outlast the budget, so the stand-in answers (of either kind); every
// rule-decided approval must still fit the limit with every approval answered before it counted.
func hostileSlowLedger(t *testing.T, rng *rand.Rand, ty *tally) {
	var mu sync.Mutex
	delay := func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		if rng.Intn(3) == 0 {
			return 1500 * time.Millisecond
		}
		return 0
	}
	cfg := slowWrites(env.Config, delay, func(r *http.Request) bool {
		return strings.HasSuffix(r.URL.Path, "/status") && strings.Contains(r.URL.Path, "/cards/")
	})
	for _, standIn := range []string{"decline", "approve"} {
		r := startReplica(t, cfg, "slow-"+standIn, 700*time.Millisecond)
		ep := hostileEndpoint(t, "slow-"+standIn, true)
		putRuleSet(t, ep.Namespace, "card-rules", fmt.Sprintf(blockingRules, standIn))
		inForce(t, r, ep.Namespace, "card-rules", true)
		spent := 0 // every approval answered so far, stand-ins included
		for i := range 9 {
			cents := 5000 + rng.Intn(20000)
			mcc := []string{"7995", "5814", "5814", "5814"}[rng.Intn(4)]
			a := authorization{card: "SL1", id: fmt.Sprintf("sl-%s-%d", standIn, i), amount: fmt.Sprintf("%d.%02d", cents/100, cents%100), mcc: mcc}
			approved, took := authorize(t, r.url, ep, a)
			// An approval at the deadline is the configured stand-in: a human chose it. Any other approval must
			// be one the rules give with everything answered before counted.
			standInApproval := approved && standIn == "approve" && took >= 700*time.Millisecond
			ty.record("slow ledger, stand-in "+standIn, approved && !standInApproval, intent(mcc, cents, spent),
				fmt.Sprintf("%s after %d cents (answered in %s)", a.amount, spent, took.Round(time.Millisecond)))
			if approved {
				spent += cents
			}
			time.Sleep(1600 * time.Millisecond) // the previous decision's ledger correction lands first
		}
		r.stop()
	}
}

// hostileRacingReplicas: two replicas answer concurrent authorizations for one card under a daily limit.
func hostileRacingReplicas(t *testing.T, rng *rand.Rand, ty *tally) {
	a, b := startReplica(t, env.Config, "race-a", 5*time.Second), startReplica(t, env.Config, "race-b", 5*time.Second)
	defer a.stop()
	defer b.stop()
	ep := hostileEndpoint(t, "race", true)
	putRuleSet(t, ep.Namespace, "card-rules", fmt.Sprintf(blockingRules, "decline"))
	inForce(t, a, ep.Namespace, "card-rules", true)
	inForce(t, b, ep.Namespace, "card-rules", true)
	authorize(t, a.url, ep, authorization{card: "RC1", id: "race-open", amount: "0.01", mcc: "5814"}) // the card exists first
	cents := 9000 + rng.Intn(4000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	approvals := 0
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := a.url
			if i%2 == 1 {
				url = b.url
			}
			approved, _ := authorize(t, url, ep, authorization{card: "RC1", id: fmt.Sprintf("race-%d", i), amount: fmt.Sprintf("%d.%02d", cents/100, cents%100), mcc: "5814"})
			mu.Lock()
			if approved {
				approvals++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	fit := (100000 - 1) / cents // what fits next to the 0.01 opened with
	for i := range approvals {
		ty.record("two replicas racing on one card", true, i >= fit, fmt.Sprintf("approval %d of %d cents (%d fit)", i+1, cents, fit))
	}
	for range 24 - approvals {
		ty.record("two replicas racing on one card", false, true, "")
	}
}

// hostileManyCurrencies: authorizations in many currencies fill the ledger; a limit in force is never reset by
// eviction.
func hostileManyCurrencies(t *testing.T, rng *rand.Rand, ty *tally) {
	r := startReplica(t, env.Config, "currencies", 2*time.Second)
	defer r.stop()
	ep := hostileEndpoint(t, "currencies", true)
	putRuleSet(t, ep.Namespace, "card-rules", `
selector: {matchLabels: {team: growth}}
defaultDecision: approve
rules:
- name: usd-daily
  reason: SPEND_LIMIT_DAILY
  spend: {window: Daily, maxAmount: "100.00", currency: USD, otherCurrencies: skip}
- {name: daily-count, reason: TOO_MANY, spend: {window: Daily, maxCount: 1000}}
- {name: weekly-count, reason: TOO_MANY, spend: {window: Weekly, maxCount: 1000}}
- {name: monthly-count, reason: TOO_MANY, spend: {window: Monthly, maxCount: 1000}}
- {name: all-time-count, reason: TOO_MANY, spend: {window: AllTime, maxCount: 100000}}
`)
	inForce(t, r, ep.Namespace, "card-rules", true)
	first := 8000 + rng.Intn(1500)
	approved, _ := authorize(t, r.url, ep, authorization{card: "MC1", id: "mc-usd-1", amount: fmt.Sprintf("%d.%02d", first/100, first%100), mcc: "5814"})
	spent := 0
	if approved {
		spent = first
	}
	for i, c := range []string{"EUR", "GBP", "JPY", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF"} {
		authorize(t, r.url, ep, authorization{card: "MC1", id: fmt.Sprintf("mc-%d", i), amount: "1", currency: c, mcc: "5814"})
	}
	cents := 2500 + rng.Intn(2000)
	approved, _ = authorize(t, r.url, ep, authorization{card: "MC1", id: "mc-usd-2", amount: fmt.Sprintf("%d.%02d", cents/100, cents%100), mcc: "5814"})
	ty.record("many currencies", approved, spent+cents > 10000, fmt.Sprintf("USD %d cents after %d cents and ten other currencies", cents, spent))
}

// TestAuthorizationAnswersWithinBudgetOnASlowAPIServer: while every write to the API server takes 10 s, each
// authorization is answered within the budget (the answer leaves before any record is written), and once the
// API server is quick again every decision is recorded (the records were spooled, not dropped). Before, the
// answer waited for the record's writes.
func TestAuthorizationAnswersWithinBudgetOnASlowAPIServer(t *testing.T) {
	var slow atomic.Bool
	cfg := slowWrites(env.Config, func() time.Duration {
		if slow.Load() {
			return 10 * time.Second
		}
		return 0
	}, func(*http.Request) bool { return true })
	const budget = 1500 * time.Millisecond
	sp, err := spool.Open(t.TempDir(), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := &authz.Store{}
	mgr, url := startReceiver(t, ctx, cfg, "slow-api", true, func(mgr ctrl.Manager, receiver *webhookserver.Server) {
		if err := (&controllers.RuleSetReconciler{Client: mgr.GetClient(), Store: store, Recorder: mgr.GetEventRecorder("slow-api")}).SetupWithManager(mgr); err != nil {
			t.Fatal(err)
		}
		receiver.AuthorizationBudget, receiver.Spool = budget, sp
		receiver.Authorizer = &authz.Authorizer{Store: store, Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Now: time.Now}
		if err := mgr.Add(&webhookserver.SpoolReplayer{Spool: sp, Reader: mgr.GetClient(), Ingester: receiver.Ingester, Interval: 500 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	})
	r := &replica{url: url, store: store, mgr: mgr}
	waitFor(t, 30*time.Second, "the first rule-set sync", store.Synced)
	ep := hostileEndpoint(t, "slow-api", true)
	putRuleSet(t, ep.Namespace, "card-rules", fmt.Sprintf(blockingRules, "decline"))
	inForce(t, r, ep.Namespace, "card-rules", true)
	for i := range 4 { // cards that exist before the API server slows down
		authorize(t, url, ep, authorization{card: fmt.Sprintf("SA%d", i), id: fmt.Sprintf("open-%d", i), amount: "1.00", mcc: "5814"})
	}

	slow.Store(true)
	var worst time.Duration
	for i := range 8 { // four known cards, four first seen now
		a := authorization{card: fmt.Sprintf("SA%d", i), id: fmt.Sprintf("slow-%d", i), amount: "12.00", mcc: []string{"5814", "7995"}[i%2]}
		approved, took := authorize(t, url, ep, a)
		worst = max(worst, took)
		if took > budget+500*time.Millisecond {
			t.Errorf("authorization %d answered after %s with a %s budget", i, took.Round(time.Millisecond), budget)
		}
		if approved && a.mcc == "7995" {
			t.Errorf("authorization %d approved a casino purchase", i)
		}
	}
	t.Logf("with every write taking 10 s: the slowest of 8 answers took %s (budget %s)", worst.Round(time.Millisecond), budget)

	slow.Store(false)
	waitFor(t, 60*time.Second, "every decision recorded", func() bool {
		for i := range 8 {
			txn := &cardsv1alpha1.CardTransaction{}
			key := client.ObjectKey{Namespace: ep.Namespace, Name: fmt.Sprintf("upay-t-slow-%d", i)}
			if env.Client.Get(context.Background(), key, txn) != nil || txn.Status.Authorization == nil {
				return false
			}
		}
		return true
	})
}
