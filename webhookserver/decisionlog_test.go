package webhookserver_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/decisionlog"
)

// decisionsIn reads the decision log records about cards in namespace ns.
func decisionsIn(t *testing.T, ns string) []decisionlog.Record {
	t.Helper()
	all, err := decisionlog.Read(strings.NewReader(decisionOut.String()))
	if err != nil {
		t.Fatal(err)
	}
	var out []decisionlog.Record
	for _, r := range all {
		if r.Card != nil && r.Card.Namespace == ns {
			out = append(out, r)
		}
	}
	return out
}

// Decisions were kept only on CardTransactions (after the answer, best effort, deleted by retention), and a
// review without a transaction ID left no trace at all. Every decision now writes one decision-log record:
// callback authorizations and reviews, with or without a transaction ID, known card or not.
func TestEveryDecisionIsLogged(t *testing.T) {
	ep := upayEndpoint(t, nil)
	putRules(t, ep.Namespace, `
rules:
- name: block-gambling
  reason: BLOCKED_MCC
  mcc: {block: ["7995"]}
`)
	auth := fmt.Sprintf(`{"event":"CC_AUTHORIZATION","trace":"t","orderNo":"L-1","timestamp":%d,"detail":{"cardId":"UC51","cardNumber":"5326123412341234","amount":"42.10","currency":"USD","merchantMcc":"7995","merchantName":"Casino","transactionId":"TL-1","authorizationId":"A-L1","transactionChannel":"ECOMMERCE"}}`,
		time.Now().UnixMilli())
	if r := sendUPay(t, ep, auth, nil); r.body != "decline" {
		t.Fatalf("authorization answered %d %q", r.status, r.body)
	}
	noTxn := map[string]any{"uid": "u-l2", "endpoint": map[string]string{"namespace": ep.Namespace, "name": ep.Name}, "providerCardID": "UC51",
		"amount": "3.00", "currency": "USD", "merchant": map[string]string{"mcc": "5814", "country": "US"}}
	if status, out := review(t, reviewToken, noTxn); status != 200 || !out.Response.Allowed {
		t.Fatalf("review answered %d %+v", status, out.Response)
	}
	unknown := map[string]any{"uid": "u-l3", "card": map[string]string{"namespace": ep.Namespace, "name": "nope"}, "amount": "1.00", "currency": "USD"}
	if status, _ := review(t, reviewToken, unknown); status != 200 {
		t.Fatalf("unknown card review answered %d", status)
	}

	var recs []decisionlog.Record
	waitFor(t, "three decision-log records", func() bool { recs = decisionsIn(t, ep.Namespace); return len(recs) >= 3 })
	if len(recs) != 3 {
		t.Fatalf("got %d records, want one per decision: %+v", len(recs), recs)
	}
	cb, rv, un := recs[0], recs[1], recs[2]
	if cb.Source != decisionlog.SourceCallback || cb.Outcome != cardsv1alpha1.DecisionDeclined || cb.Rule != "block-gambling" ||
		cb.Input.TransactionID != "TL-1" || cb.Input.Amount != "42.10" || cb.Input.MCC != "7995" || cb.Card.ProviderCardID != "UC51" ||
		cb.Endpoint != ep.Namespace+"/"+ep.Name || cb.RuleSetRevision != "9f2c1e7" || cb.LatencyMicroseconds <= 0 {
		t.Errorf("callback decision record = %+v", cb)
	}
	if rv.Source != decisionlog.SourceReview || rv.Outcome != cardsv1alpha1.DecisionApproved || rv.Input.TransactionID != "" ||
		rv.Card.Name != cb.Card.Name || rv.RuleSetVersion != ep.Namespace+"/card-rules@1" {
		t.Errorf("review without a transaction ID = %+v", rv)
	}
	if un.Reason != cardsv1alpha1.DecisionUnknownCard || un.Card.Name != "nope" {
		t.Errorf("unknown card review = %+v", un)
	}
	if strings.Contains(decisionOut.String(), "5326123412341234") {
		t.Error("the decision log holds a card number")
	}
}
