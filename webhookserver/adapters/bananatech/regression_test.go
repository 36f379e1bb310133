package bananatech

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/totals"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// decodeOne decodes a timed plaintext of typ and returns its events, failing on a rejection.
func decodeOne(t *testing.T, typ, plaintext string) []event.Event {
	t.Helper()
	ep := rawEndpoint(t)
	res, err := decode(ep, encode(t, ep, typ, plaintext))
	if err != nil {
		t.Fatalf("%s %s: %v", typ, plaintext, err)
	}
	if res.Unknown {
		t.Fatalf("%s: reported as an unknown type", typ)
	}
	for i := range res.Events {
		res.Events[i].ID = ""
	}
	return res.Events
}

func wantEvents(t *testing.T, name string, got, want []event.Event) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", name, render(got), render(want))
	}
}

// USER_CREATE_RESULT is about the holder: it carries user_id and no card, so it must reach the holder (HolderID,
// no CardID) as KYC, or as a Failure with the reason verbatim when the creation failed. It used to be a KYC
// rejection for FAILED and lost when no card of the user existed yet.
func TestRegressionUserCreateResultIsHolderLevel(t *testing.T) {
	got := decodeOne(t, UserCreateResult, `{"user_id":"u-1","status":"FAILED","message":"ID document unreadable"}`)
	wantEvents(t, "failed", got, []event.Event{{Type: UserCreateResult, HolderID: "u-1",
		Failure: &event.Failure{Kind: UserCreateResult, Reason: "ID document unreadable", ProviderStatus: "FAILED", Reference: "u-1"}}})
	got = decodeOne(t, UserCreateResult, `{"user_id":61207,"status":"APPROVED"}`)
	wantEvents(t, "approved", got, []event.Event{{Type: UserCreateResult, HolderID: "61207",
		KYC: &event.KYC{State: cardsv1alpha1.KYCApproved}}})
}

// A failed application or assignment names no card (the seed: card_id "only present for successful assigns");
// the Failure must still be emitted, on the holder when user_id is sent, else for the endpoint. It used to be
// acknowledged and dropped.
func TestRegressionFailedApplyAndAssignAreKept(t *testing.T) {
	got := decodeOne(t, CardAssignResult, timed(`{"user_id":61207,"status":"FAILED","error_reason":"101:0 - card number not exist"}`))
	wantEvents(t, "assign failed", got, []event.Event{{Type: CardAssignResult, OccurredAt: occurred, HolderID: "61207",
		Failure: &event.Failure{Kind: CardAssignResult, Reason: "101:0 - card number not exist", ProviderStatus: "FAILED"}}})

	got = decodeOne(t, CardAssignResult, timed(`{"status":"FAILED","error_reason":"card already assigned"}`))
	wantEvents(t, "assign failed, no user", got, []event.Event{{Type: CardAssignResult, OccurredAt: occurred,
		Failure: &event.Failure{Kind: CardAssignResult, Reason: "card already assigned", ProviderStatus: "FAILED"}}})

	// A failed assignment that names the card does not make that card the holder's, nor Failed.
	got = decodeOne(t, CardAssignResult, timed(`{"card_id":"c-5","user_id":7,"status":"FAILED","error_reason":"card frozen"}`))
	wantEvents(t, "assign failed with card", got, []event.Event{{Type: CardAssignResult, OccurredAt: occurred, HolderID: "7",
		Failure: &event.Failure{Kind: CardAssignResult, Reason: "card frozen", ProviderStatus: "FAILED", Reference: "c-5"}}})

	got = decodeOne(t, CardApplyResult, timed(`{"template_id":9,"user_id":61207,"status":"FAILED","error_reason":"KYC not approved"}`))
	wantEvents(t, "apply failed", got, []event.Event{{Type: CardApplyResult, OccurredAt: occurred, HolderID: "61207",
		Failure: &event.Failure{Kind: CardApplyResult, Reason: "KYC not approved", ProviderStatus: "FAILED", Reference: "9"}}})
}

// An approved authorization is a hold, not spend: only the purchase (its own transaction_id) is a Completed debit.
// Both used to be Completed debits, so the card's totals.spent counted the purchase twice.
func TestRegressionAuthorizationIsNotSpend(t *testing.T) {
	auth := decodeOne(t, TransactionCreated, timed(`{"card_id":730512,"transaction_id":"a-1","type":"AUTHORIZATION","status":"SUCCESS","billing_currency":"USD","billing_amount":"65.12","transaction_currency":"USD","transaction_amount":"65.12"}`))
	buy := decodeOne(t, TransactionCreated, timed(`{"card_id":730512,"transaction_id":"p-1","type":"PURCHASE","status":"SUCCESS","billing_currency":"USD","billing_amount":"65.12","transaction_currency":"USD","transaction_amount":"65.12"}`))
	if tx := auth[0].Transaction; tx.Type != cardsv1alpha1.TransactionAuthorization || tx.Phase != cardsv1alpha1.TransactionPending {
		t.Errorf("AUTHORIZATION SUCCESS = %s %s, want Authorization Pending", tx.Type, tx.Phase)
	}
	if tx := buy[0].Transaction; tx.Type != cardsv1alpha1.TransactionPurchase || tx.Phase != cardsv1alpha1.TransactionCompleted ||
		tx.Direction != cardsv1alpha1.Debit {
		t.Errorf("PURCHASE SUCCESS = %s %s %s, want Purchase Completed Debit", tx.Type, tx.Phase, tx.Direction)
	}
	// The card's totals, as the ingester keeps them, count the purchase once.
	st := &cardsv1alpha1.CardStatus{}
	for i, ev := range [][]event.Event{auth, buy} {
		tx := ev[0].Transaction
		txn := &cardsv1alpha1.CardTransaction{ObjectMeta: metav1.ObjectMeta{Name: tx.ID},
			Status: cardsv1alpha1.CardTransactionStatus{Phase: tx.Phase, Direction: tx.Direction, Amount: tx.Amount, BillingAmount: tx.BillingAmount}}
		if totals.Settled(tx.Phase) {
			totals.Add(st, txn)
		} else if i == 1 {
			t.Errorf("the purchase is not settled")
		}
	}
	if st.Totals == nil || st.Totals.Spent != "65.12" {
		t.Errorf("totals = %+v, want spent 65.12", st.Totals)
	}
}

// A successful application issues a card that still has to be activated (CARD_ACTIVATE_RESULT): it is not
// Active until then. It used to be Active (and claimed Virtual) at once.
func TestRegressionAppliedCardIsNotActive(t *testing.T) {
	got := decodeOne(t, CardApplyResult, timed(`{"template_id":9,"user_id":61207,"card_id":730512,"status":"SUCCESS"}`))
	if c := got[0].Card; c == nil || c.Phase != cardsv1alpha1.CardPendingActivation || c.Type != "" {
		t.Errorf("applied card = %s, want PendingActivation of no claimed type", render(got))
	}
	got = decodeOne(t, CardApplyResult, timed(`{"template_id":9,"user_id":61207,"card_id":730512,"status":"PENDING"}`))
	if c := got[0].Card; c == nil || c.Phase != cardsv1alpha1.CardRequested {
		t.Errorf("pending application = %s, want Requested", render(got))
	}
	got = decodeOne(t, CardActivateResult, timed(`{"card_id":730512,"card_number":"`+testPAN+`","status":"SUCCESS"}`))
	if c := got[0].Card; c == nil || c.Phase != cardsv1alpha1.CardActive {
		t.Errorf("activated card = %s, want Active", render(got))
	}
}

// The balance refunded on closing was dropped when no currency came with it (the seed documents none).
func TestRegressionCloseKeepsRefundAmount(t *testing.T) {
	got := decodeOne(t, CardCloseResult, timed(`{"card_id":730512,"transaction_id":"T-5581402","refund_amount":"56.58","status":"SUCCESS","description":"Card closed"}`))
	wantEvents(t, "without currency", got, []event.Event{{Type: CardCloseResult, OccurredAt: occurred, CardID: "730512",
		Card: &event.Card{Phase: cardsv1alpha1.CardClosed, ProviderStatus: "close:SUCCESS", Reason: "Card closed",
			References: map[string]string{"transaction_id": "T-5581402", "refund_amount": "56.58"}}}})
	got = decodeOne(t, CardCloseResult, timed(`{"card_id":730512,"transaction_id":"T-5581402","refund_amount":56.580,"currency":"USD","status":"SUCCESS"}`))
	wantEvents(t, "with currency", got, []event.Event{{Type: CardCloseResult, OccurredAt: occurred, CardID: "730512",
		Card: &event.Card{Phase: cardsv1alpha1.CardClosed, ProviderStatus: "close:SUCCESS",
			References: map[string]string{"transaction_id": "T-5581402"},
			Amounts:    map[string]cardsv1alpha1.Money{"refund_amount": {Value: "56.580", Currency: "USD"}}}}})
}

// The seed's status lists are open ("SUCCESS, FAILED, etc."): a value the adapter does not know is acknowledged
// as Unknown with the value verbatim. It used to be a 400, so BananaTech retried and the event was lost.
func TestRegressionUnknownStatusesAreAcknowledged(t *testing.T) {
	got := decodeOne(t, TransactionCreated, timed(`{"card_id":1,"transaction_id":2,"type":"PURCHASE","status":"Partially_Settled","billing_amount":1,"billing_currency":"USD"}`))
	if tx := got[0].Transaction; tx.Phase != cardsv1alpha1.TransactionUnknown || tx.ProviderStatus != "Partially_Settled" {
		t.Errorf("transaction = %s", render(got))
	}
	got = decodeOne(t, CardRechargeResult, timed(`{"card_id":1,"transaction_id":2,"status":"ON_HOLD","receive_amount":5,"currency":"USD"}`))
	if tx := got[0].Transaction; tx.Phase != cardsv1alpha1.TransactionUnknown || tx.ProviderStatus != "ON_HOLD" {
		t.Errorf("recharge = %s", render(got))
	}
	got = decodeOne(t, CardStatusChange, timed(`{"card_id":1,"status":"SUCCESS","card_status":"Melted"}`))
	if c := got[0].Card; c.Phase != cardsv1alpha1.CardUnknown || c.ProviderStatus != "Melted" {
		t.Errorf("card status = %s", render(got))
	}
	got = decodeOne(t, CardApplyResult, timed(`{"template_id":1,"card_id":1,"status":"Maybe"}`))
	if c := got[0].Card; c.Phase != cardsv1alpha1.CardUnknown || c.ProviderStatus != "apply:Maybe" {
		t.Errorf("apply = %s", render(got))
	}
	// A KYC value no state fits reaches the holder as Unknown with the value verbatim, never a guessed state.
	got = decodeOne(t, UserCreateResult, `{"user_id":1,"status":"MANUAL_REVIEW_2"}`)
	wantEvents(t, "kyc", got, []event.Event{{Type: UserCreateResult, HolderID: "1",
		KYC: &event.KYC{State: cardsv1alpha1.KYCUnknown, ProviderStatus: "MANUAL_REVIEW_2"}}})
}

// A card number in any event is kept as BIN + last 4 only; it used to be read on activation results alone.
func TestRegressionCardNumberInAnyEvent(t *testing.T) {
	for _, tc := range []struct{ typ, plaintext string }{
		{CardStatusChange, `{"card_id":1,"card_number":"` + testPAN + `","status":"SUCCESS","card_status":"LOCKED"}`},
		{TransactionCreated, `{"card_id":1,"card_number":"` + testPAN + `","transaction_id":2,"type":"PURCHASE","status":"SUCCESS","billing_amount":1,"billing_currency":"USD"}`},
		{CardBalanceChange, `{"card_id":1,"card_number":"411111******1111","available":3,"currency":"USD"}`},
	} {
		got := decodeOne(t, tc.typ, timed(tc.plaintext))
		want := &cardsv1alpha1.MaskedNumber{BIN: "411111", Last4: "1111"}
		if c := got[0].Card; c == nil || !reflect.DeepEqual(c.Number, want) {
			t.Errorf("%s: card = %s, want number %+v", tc.typ, render(got), want)
		}
	}
}
