package webhookserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/authz"
	"github.com/cardplane/cardplane/internal/rules"
	"github.com/cardplane/cardplane/webhookserver"
)

func putRules(t *testing.T, ns, yaml string) {
	t.Helper()
	rs, err := rules.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	rs.Name, rs.Version, rs.Revision = ns+"/card-rules", ns+"/card-rules@1", "9f2c1e7"
	ruleSets.Set(ns, "card-rules", rs)
	t.Cleanup(func() { ruleSets.Delete(ns, "card-rules") })
}

func review(t *testing.T, token string, req map[string]any) (int, *webhookserver.AuthorizationReview) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"apiVersion": "cards.cardplane.io/v1alpha1", "kind": "AuthorizationReview", "request": req})
	h := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
	r := postTo(t, reviews.URL+"/v1alpha1/authorizationreviews", h, body)
	out := &webhookserver.AuthorizationReview{}
	_ = json.NewDecoder(bytes.NewReader([]byte(r.body))).Decode(out)
	return r.status, out
}

// TestUPayAuthorizationFollowsTheRules: CC_AUTHORIZATION is answered decline by a blocking rule, approve
// otherwise, and the decision is recorded on the transaction with the rule and rule-set version.
func TestUPayAuthorizationFollowsTheRules(t *testing.T) {
	ep := upayEndpoint(t, nil)
	putRules(t, ep.Namespace, `
rules:
- name: block-gambling
  reason: BLOCKED_MCC
  mcc: {block: ["7995"]}
- name: big-spender
  reason: AMOUNT_LIMIT
  mode: shadow
  amount: {max: "40.00", currency: USD}
`)
	auth := func(txID, mcc string) string {
		return fmt.Sprintf(`{"event":"CC_AUTHORIZATION","trace":"t","orderNo":"%s","timestamp":%d,"detail":{"cardId":"UC31","cardNumber":"5326********1234","amount":"42.10","currency":"USD","merchantMcc":%q,"transactionId":%q,"authorizationId":"A-%s","transactionChannel":"ECOMMERCE"}}`,
			txID, time.Now().UnixMilli(), mcc, txID, txID)
	}
	if r := sendUPay(t, ep, auth("T-1", "7995"), nil); r.status != 200 || r.body != "decline" {
		t.Fatalf("gambling authorization answered %d %q, want decline", r.status, r.body)
	}
	if r := sendUPay(t, ep, auth("T-2", "5814"), nil); r.status != 200 || r.body != "approve" {
		t.Fatalf("coffee authorization answered %d %q, want approve", r.status, r.body)
	}
	txn := &cardsv1alpha1.CardTransaction{}
	waitFor(t, "the declined decision recorded", func() bool {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: ep.Namespace, Name: "upay-main-t-1"}, txn) == nil && txn.Status.Authorization != nil
	})
	a := txn.Status.Authorization
	if a.Outcome != cardsv1alpha1.DecisionDeclined || a.Rule != "block-gambling" || a.Reason != "BLOCKED_MCC" || a.Mode != cardsv1alpha1.RuleEnforce ||
		a.RuleSetVersion != ep.Namespace+"/card-rules@1" || a.LatencyMicroseconds <= 0 {
		t.Errorf("recorded decision = %+v", a)
	}
	if len(a.Shadow) != 1 || a.Shadow[0].Rule != "big-spender" {
		t.Errorf("shadow results = %+v, want big-spender recorded beside the enforced outcome", a.Shadow)
	}
}

func TestAuthorizationReviewAPI(t *testing.T) {
	ep := upayEndpoint(t, nil)
	putRules(t, ep.Namespace, `
rules:
- name: eu-only
  reason: BLOCKED_COUNTRY
  merchantCountry: {allow: [DE, FR]}
`)
	// A card the receiver knows.
	sendUPay(t, ep, statusEvent("UC40", "1", time.Now(), "o-40"), nil)
	byName := map[string]any{"uid": "u-1", "card": map[string]string{"namespace": ep.Namespace, "name": "upay-main-uc40"},
		"transactionID": "t-40", "amount": "12.50", "currency": "USD", "merchant": map[string]string{"name": "Cafe", "mcc": "5814", "country": "US"}}
	status, out := review(t, reviewToken, byName)
	if status != 200 || out.Response == nil || out.Response.UID != "u-1" || out.Response.Allowed || out.Response.Reason != "BLOCKED_COUNTRY" || out.Response.Rule != "eu-only" {
		t.Fatalf("review answered %d %+v", status, out.Response)
	}
	byEndpoint := map[string]any{"uid": "u-2", "endpoint": map[string]string{"namespace": ep.Namespace, "name": ep.Name}, "providerCardID": "UC40",
		"amount": "12.50", "currency": "EUR", "merchant": map[string]string{"country": "DE"}}
	if status, out := review(t, reviewToken, byEndpoint); status != 200 || !out.Response.Allowed || out.Response.RuleSetVersion == "" {
		t.Errorf("review by endpoint answered %d %+v", status, out.Response)
	}
	unknown := map[string]any{"uid": "u-3", "card": map[string]string{"namespace": ep.Namespace, "name": "nope"}, "amount": "1", "currency": "USD"}
	if status, out := review(t, reviewToken, unknown); status != 200 || out.Response.Allowed || out.Response.Reason != cardsv1alpha1.DecisionUnknownCard {
		t.Errorf("unknown card answered %d %+v", status, out.Response)
	}
	if status, _ := review(t, "wrong", byName); status != 401 {
		t.Errorf("wrong token answered %d", status)
	}
	bad := map[string]any{"uid": "u-4", "card": map[string]string{"namespace": ep.Namespace, "name": "upay-main-uc40"}, "amount": "1.5e3", "currency": "USD"}
	if status, _ := review(t, reviewToken, bad); status != 400 {
		t.Errorf("an exponent amount answered %d, want 400", status)
	}
	// The decision of u-1 is recorded on its transaction.
	txn := &cardsv1alpha1.CardTransaction{}
	waitFor(t, "the review decision recorded", func() bool {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: ep.Namespace, Name: "upay-main-t-40"}, txn) == nil && txn.Status.Authorization != nil
	})
	if txn.Status.Authorization.Reason != "BLOCKED_COUNTRY" {
		t.Errorf("recorded %+v", txn.Status.Authorization)
	}
}

// TestTwoReceiversNeverApprovePastTheLimit: two receiver instances, each with its own API client, rule-set
// store and per-card queue (two replicas), answer 40 concurrent AuthorizationReviews of 9.00 USD for one card
// under a 100.00 USD daily limit: exactly 11 are approved.
func TestTwoReceiversNeverApprovePastTheLimit(t *testing.T) {
	ep := upayEndpoint(t, nil)
	sendUPay(t, ep, statusEvent("UC50", "1", time.Now(), "o-50"), nil)
	const limits = `
rules:
- name: daily
  reason: SPEND_LIMIT_DAILY
  spend: {window: Daily, maxAmount: "100.00", currency: USD}
`
	putRules(t, ep.Namespace, limits)
	second := &authz.Store{}
	rs, err := rules.Parse([]byte(limits))
	if err != nil {
		t.Fatal(err)
	}
	rs.Name, rs.Version = ep.Namespace+"/card-rules", ep.Namespace+"/card-rules@1"
	second.Set(ep.Namespace, "card-rules", rs)
	c2, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	second.MarkSynced()
	replica := &webhookserver.Server{Options: webhookserver.Options{AuthorizationBudget: 10 * time.Second},
		Reader: receiver.Reader, Ingester: receiver.Ingester,
		Authorizer: &authz.Authorizer{Store: second, Client: c2, APIReader: c2, Now: time.Now}}
	srv2 := httptest.NewServer((&webhookserver.ReviewServer{Receiver: replica, SharedToken: reviewToken}).Handler())
	defer srv2.Close()

	var approved, declined atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			base := reviews.URL
			if i%2 == 1 {
				base = srv2.URL
			}
			body, _ := json.Marshal(map[string]any{"apiVersion": "cards.cardplane.io/v1alpha1", "kind": "AuthorizationReview",
				"request": map[string]any{"uid": fmt.Sprint("u-", i), "authorizationID": fmt.Sprint("a-", i), "amount": "9.00", "currency": "USD",
					"card": map[string]string{"namespace": ep.Namespace, "name": "upay-main-uc50"}}})
			req, _ := http.NewRequest(http.MethodPost, base+"/v1alpha1/authorizationreviews", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+reviewToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			out := &webhookserver.AuthorizationReview{}
			_ = json.NewDecoder(resp.Body).Decode(out)
			switch {
			case out.Response != nil && out.Response.Allowed:
				approved.Add(1)
			case out.Response != nil && out.Response.Reason == "SPEND_LIMIT_DAILY":
				declined.Add(1)
			default:
				t.Errorf("review %d: %d %+v", i, resp.StatusCode, out.Response)
			}
		}(i)
	}
	wg.Wait()
	if approved.Load() != 11 || declined.Load() != 29 {
		t.Errorf("approved %d, declined %d: want exactly 11 approvals (11 x 9.00 <= 100.00 < 12 x 9.00)", approved.Load(), declined.Load())
	}
}

// TestReviewCallersAreAuthorizedPerNamespace: a ServiceAccount token is checked with a TokenReview, and its
// holder may decide only on cards of namespaces where it may "authorize" cards (SubjectAccessReview); anyone
// else is refused before any card is read, and each caller has its own rate limit.
func TestReviewCallersAreAuthorizedPerNamespace(t *testing.T) {
	mine, theirs := upayEndpoint(t, nil), upayEndpoint(t, nil)
	putRules(t, mine.Namespace, "rules: []\ndefaultDecision: approve\n")
	sendUPay(t, mine, statusEvent("UC60", "1", time.Now(), "o-60"), nil)
	sendUPay(t, theirs, statusEvent("UC61", "1", time.Now(), "o-61"), nil)
	allowed := serviceAccountToken(t, mine.Namespace, "payments-app", true)
	bystander := serviceAccountToken(t, mine.Namespace, "bystander", false)
	ask := func(ns, card string) map[string]any {
		return map[string]any{"uid": "u", "amount": "1.00", "currency": "USD", "card": map[string]string{"namespace": ns, "name": card}}
	}
	if status, out := review(t, allowed, ask(mine.Namespace, "upay-main-uc60")); status != 200 || !out.Response.Allowed {
		t.Errorf("own namespace: %d %+v", status, out.Response)
	}
	if status, out := review(t, allowed, ask(theirs.Namespace, "upay-main-uc61")); status != 403 || out.Response != nil {
		t.Errorf("another team's card: %d %+v, want 403", status, out.Response)
	}
	byEndpoint := map[string]any{"uid": "u", "amount": "1.00", "currency": "USD", "providerCardID": "UC61",
		"endpoint": map[string]string{"namespace": theirs.Namespace, "name": theirs.Name}}
	if status, _ := review(t, allowed, byEndpoint); status != 403 {
		t.Errorf("another team's card by its endpoint: %d, want 403", status)
	}
	if status, _ := review(t, bystander, ask(mine.Namespace, "upay-main-uc60")); status != 403 {
		t.Errorf("a ServiceAccount without the verb: %d, want 403", status)
	}
	if status, _ := review(t, "not-a-token", ask(mine.Namespace, "upay-main-uc60")); status != 401 {
		t.Errorf("a made-up token: %d, want 401", status)
	}

	// Each caller has its own budget: one that floods is refused, another is not.
	limited := httptest.NewServer((&webhookserver.ReviewServer{Receiver: receiver, SharedToken: reviewToken, RatePerCaller: 1, BurstPerCaller: 2}).Handler())
	defer limited.Close()
	body, _ := json.Marshal(map[string]any{"apiVersion": "cards.cardplane.io/v1alpha1", "kind": "AuthorizationReview", "request": ask(mine.Namespace, "upay-main-uc60")})
	var codes []int
	for range 4 {
		codes = append(codes, postTo(t, limited.URL+"/v1alpha1/authorizationreviews", http.Header{"Authorization": {"Bearer " + reviewToken}}, body).status)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[3] != 429 {
		t.Errorf("a flooding caller got %v, want 200 200 ... 429", codes)
	}
}

// serviceAccountToken creates a ServiceAccount (with the review verb on cards of its namespace when allowed) and
// returns a token for it.
func serviceAccountToken(t *testing.T, ns, name string, allowed bool) string {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := k8s.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	if allowed {
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"cards.cardplane.io"}, Resources: []string{"cards"}, Verbs: []string{webhookserver.ReviewVerb}}}}
		binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}}}
		for _, o := range []client.Object{role, binding} {
			if err := k8s.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// TestCardsAreGovernedFromFirstSight: a card a callback creates carries its endpoint's cardLabels, so the rule
// set that selects them governs its first authorization (a casino purchase is declined); a card no rule set
// governs is declined (NO_RULE_SET), never approved. (Before, the first was approved with NO_RULE_SET, and so
// was the second.)
func TestCardsAreGovernedFromFirstSight(t *testing.T) {
	ep := upayEndpoint(t, func(ep *cardsv1alpha1.WebhookEndpoint) {
		ep.Spec.CardLabels = map[string]cardsv1alpha1.LabelValue{"team": "growth"}
	})
	putRules(t, ep.Namespace, `
selector: {matchLabels: {team: growth}}
defaultDecision: approve
rules:
- name: block-gambling
  reason: BLOCKED_MCC
  mcc: {block: ["7995"]}
`)
	auth := func(card, txID, mcc string) string {
		return fmt.Sprintf(`{"event":"CC_AUTHORIZATION","trace":"t","orderNo":"%s","timestamp":%d,"detail":{"cardId":%q,"amount":"42.10","currency":"USD","merchantMcc":%q,"transactionId":%q,"authorizationId":"A-%s","transactionChannel":"ECOMMERCE"}}`,
			txID, time.Now().UnixMilli(), card, mcc, txID, txID)
	}
	if r := sendUPay(t, ep, auth("UC70", "T-70", "7995"), nil); r.status != 200 || r.body != "decline" {
		t.Fatalf("a casino purchase on a card first seen now answered %d %q, want decline", r.status, r.body)
	}
	card := &cardsv1alpha1.Card{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ep.Namespace, Name: "upay-main-uc70"}, card); err != nil {
		t.Fatal(err)
	}
	if card.Labels["team"] != "growth" {
		t.Errorf("the card's labels %v lack the endpoint's cardLabels", card.Labels)
	}
	if r := sendUPay(t, ep, auth("UC70", "T-71", "5814"), nil); r.body != "approve" {
		t.Errorf("a coffee on the same card answered %q, want approve", r.body)
	}

	// An endpoint whose cards no rule set selects: declined, with the reason recorded.
	bare := upayEndpoint(t, nil)
	if r := sendUPay(t, bare, auth("UC72", "T-72", "5814"), nil); r.status != 200 || r.body != "decline" {
		t.Fatalf("an ungoverned card answered %d %q, want decline", r.status, r.body)
	}
	txn := &cardsv1alpha1.CardTransaction{}
	waitFor(t, "the decision recorded", func() bool {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: bare.Namespace, Name: "upay-main-t-72"}, txn) == nil && txn.Status.Authorization != nil
	})
	if txn.Status.Authorization.Reason != cardsv1alpha1.DecisionNoRuleSet {
		t.Errorf("recorded %+v, want NO_RULE_SET", txn.Status.Authorization)
	}
}
