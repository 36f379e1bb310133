package tevau

import (
	"reflect"
	"testing"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// one decodes body and returns its single event.
func one(t *testing.T, body string) event.Event {
	t.Helper()
	res := decode(t, body)
	if res.Unknown || len(res.Events) != 1 {
		t.Fatalf("%s: unknown=%v events=%d, want one event", body, res.Unknown, len(res.Events))
	}
	return res.Events[0]
}

// A physical card is made, shipped and then activated by its own CardActive callback: CardCreate must not make
// it Active. Only a virtual card (Tevau's CIDV… IDs) is usable on creation.
func TestRegressionPhysicalCardNotActiveOnCreate(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		phase      cardsv1alpha1.CardPhase
		typ        cardsv1alpha1.CardType
	}{
		{"physical CardCreate", `{"eventType":"CardCreate","cardId":"CIDP019485633107","orderNo":"CC2511220802104021"}`,
			cardsv1alpha1.CardPendingActivation, cardsv1alpha1.CardPhysical},
		{"unknown type CardCreate", `{"eventType":"CardCreate","cardId":"CID019485633107","orderNo":"CC1"}`,
			cardsv1alpha1.CardPendingActivation, ""},
		{"virtual CardCreate", `{"eventType":"CardCreate","cardId":"CIDV012566246286","orderNo":"CC1"}`,
			cardsv1alpha1.CardActive, cardsv1alpha1.CardVirtual},
		{"CardShipped keeps the phase", `{"eventType":"CardShipped","cardId":"CIDP019485633107","orderNo":"CC1"}`,
			"", cardsv1alpha1.CardPhysical},
		{"CardBind keeps the phase", `{"eventType":"CardBind","cardId":"CIDP019485633107","orderNo":"CC1"}`,
			"", cardsv1alpha1.CardPhysical},
		{"CardActive activates", `{"eventType":"CardActive","cardId":"CIDP019485633107","orderNo":"CC1"}`,
			cardsv1alpha1.CardActive, cardsv1alpha1.CardPhysical},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := one(t, tc.body)
			if ev.Card == nil || ev.Card.Phase != tc.phase || ev.Card.Type != tc.typ {
				t.Fatalf("card = %s, want phase %q type %q", dump(ev), tc.phase, tc.typ)
			}
		})
	}
}

// An authorization, even a successful one (status 1), is never spend: Pending until its Clearing.
func TestRegressionAuthorizationPendingUntilCleared(t *testing.T) {
	auth := one(t, authorization).Transaction
	if auth == nil || auth.Type != cardsv1alpha1.TransactionAuthorization || auth.Phase != cardsv1alpha1.TransactionPending {
		t.Fatalf("authorization = %+v, want Authorization Pending", auth)
	}
	clr := one(t, clearing).Transaction
	if clr == nil || clr.Type != cardsv1alpha1.TransactionClearing || clr.Phase != cardsv1alpha1.TransactionCompleted {
		t.Fatalf("clearing = %+v, want Clearing Completed", clr)
	}
	if dec := one(t, declined).Transaction; dec.Phase != cardsv1alpha1.TransactionDeclined {
		t.Errorf("declined authorization phase = %s", dec.Phase)
	}
}

// No documented Tevau callback carries the card's balance; one that does (under the usual names) sets
// Event.Balance, in the card currency, and never for an event about no card.
func TestRegressionBalanceWhenSent(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"eventType":"CardTopup","cardId":"CIDV1","rechargeAmount":"10","orderNo":"CD1","availableBalance":"25.5"}`, "25.50"},
		{`{"eventType":"CardFreeze","cardId":"CIDV1","orderNo":"CF1","balance":"0"}`, "0.00"},
		{`{"eventType":"Clearing","cardId":"CIDV1","orderId":"O1","transAmount":1,"transCurrency":"USD","cardBalance":7}`, "7.00"},
	} {
		ev := one(t, tc.body)
		if ev.Balance == nil || string(ev.Balance.Available.Value) != tc.want || ev.Balance.Available.Currency != CardCurrency {
			t.Errorf("%s: balance = %+v, want %s USD", tc.body, ev.Balance, tc.want)
		}
	}
	if ev := one(t, `{"eventType":"Kyc","userCode":"U1","auditState":"1","balance":"3"}`); ev.Balance != nil {
		t.Errorf("a holder event got a card balance: %+v", ev.Balance)
	}
}

// Status values Tevau leaves open are acknowledged and kept neutral, never refused with a 400 (the provider
// would retry the same body and the event would be lost).
func TestRegressionUnknownStatusesNeutral(t *testing.T) {
	ev := one(t, `{"eventType":"Kyc","userCode":"U1","auditState":"9","auditRemark":"?"}`)
	if ev.HolderID != "U1" || ev.KYC == nil || ev.KYC.State != cardsv1alpha1.KYCUnknown || ev.KYC.ProviderStatus != "9" {
		t.Errorf("unknown auditState: %s, want the holder's KYC Unknown with auditState 9 verbatim", dump(ev))
	}
	// 8.5 names "additional authorization" and "transaction" notifications without their eventType.
	ev = one(t, `{"orderId":"CT1","cardId":"CIDV1","eventType":"AdditionalAuthorization","status":1,"transAmount":5,
"transCurrency":"EUR","details":{"subOrderId":"S9","principal":5.5,"subStatus":7,"subType":2,"createTimeStamp":1749888799163}}`)
	tx := ev.Transaction
	if tx == nil || tx.Phase != cardsv1alpha1.TransactionUnknown || tx.Type != cardsv1alpha1.TransactionOther ||
		tx.ID != "S9" || tx.OriginalTransactionID != "CT1" || tx.Direction != "" ||
		tx.ProviderStatus != "AdditionalAuthorization status=1 subStatus=7 subType=2" ||
		!reflect.DeepEqual(tx.Amount, amt("5.00", "EUR")) || !reflect.DeepEqual(tx.BillingAmount, amt("5.50", "USD")) {
		t.Errorf("unknown transaction event: %s", dump(ev))
	}
	// An unknown event that is no transaction is still acknowledged as unknown.
	if res := decode(t, `{"eventType":"TokenNotification","cardId":"CIDV1"}`); !res.Unknown {
		t.Errorf("TokenNotification: %+v", res)
	}
}

// A card number in any callback about a card reaches Event.Card.Number as BIN + last four.
func TestRegressionCardNumbersReduced(t *testing.T) {
	for _, body := range []string{
		`{"eventType":"Kyc","userCode":"U1","cardId":"CIDV1","auditState":"1","cardNo":"4111 1111 1111 1111"}`,
		`{"eventType":"CardCreate","cardId":"CIDV1","orderNo":"O1","cardNumber":"4111111111111111"}`,
		`{"eventType":"CardBind","cardId":"CIDP1","orderNo":"O1","cardPan":"4111-1111-1111-1111"}`,
		`{"eventType":"Refund","cardId":"CIDV1","orderId":"O1","cardPan":"4111111111111111","details":{"principal":1}}`,
	} {
		ev := one(t, body)
		if ev.Card == nil || !reflect.DeepEqual(ev.Card.Number, &cardsv1alpha1.MaskedNumber{BIN: "411111", Last4: "1111"}) {
			t.Errorf("%s: card = %s", body, dump(ev))
		}
	}
	// Without a card ID the number would be applied to every card of the holder: it is left out.
	if ev := one(t, `{"eventType":"Kyc","userCode":"U1","auditState":"1","cardNo":"4111111111111111"}`); ev.Card != nil {
		t.Errorf("holder-only event got card facts: %s", dump(ev))
	}
}

// userCode names the holder on any callback, not only Kyc.
func TestRegressionHolderID(t *testing.T) {
	for _, body := range []string{
		`{"eventType":"CardCreate","cardId":"CIDV1","orderNo":"O1","userCode":"CB14837342"}`,
		`{"eventType":"CardTopup","cardId":"CIDV1","orderNo":"O1","rechargeAmount":"1","userCode":"CB14837342"}`,
		`{"eventType":"Authorization","cardId":"CIDV1","orderId":"O1","transAmount":1,"transCurrency":"USD","userCode":"CB14837342"}`,
		`{"eventType":"3DS","cardId":"CIDV1","authId":"A1","userCode":"CB14837342"}`,
		`{"eventType":"CardShipped","cardId":"CIDP1","orderNo":"O1","userCode":"CB14837342"}`,
	} {
		if ev := one(t, body); ev.HolderID != "CB14837342" {
			t.Errorf("%s: holder = %q", body, ev.HolderID)
		}
	}
}

// Order numbers, the fee breakdown and Tevau's channel amounts are kept for reconciliation; CardClose's
// totalAmount is a card amount, not spend.
func TestRegressionReconciliationFieldsKept(t *testing.T) {
	tx := one(t, authorization).Transaction
	wantFees := []cardsv1alpha1.FeeComponent{
		{Name: "fxFee", Amount: *amt("0.30", "USD")},
		{Name: "authorizationFee", Amount: *amt("0.10", "USD")},
		{Name: "atmFee", Amount: *amt("0.00", "USD")},
	}
	if !reflect.DeepEqual(tx.Fees, wantFees) || !reflect.DeepEqual(tx.Fee, amt("0.40", "USD")) {
		t.Errorf("fees = %+v fee = %v", tx.Fees, deref(tx.Fee))
	}
	wantRefs := map[string]string{"Authorization.subOrderId": "S2506140813104249", "channelPrincipal": "10",
		"channelAtmFee": "0", "channelAuthorizationFee": "0.2", "channelFxFee": "0.6"}
	if !reflect.DeepEqual(tx.References, wantRefs) {
		t.Errorf("references = %v, want %v", tx.References, wantRefs)
	}
	tx = one(t, refund).Transaction
	if want := map[string]string{"refundFee": "0.2", "channelRefund": "5", "channelRefundFee": "0.4"}; !reflect.DeepEqual(tx.References, want) {
		t.Errorf("refund references = %v, want %v", tx.References, want)
	}
	ev := one(t, string(sample(t, "tevau-card-close.json")))
	if ev.Transaction != nil || ev.Card == nil ||
		!reflect.DeepEqual(ev.Card.Amounts, map[string]cardsv1alpha1.Money{"totalAmount": *amt("1.00", "USD")}) ||
		!reflect.DeepEqual(ev.Card.References, map[string]string{"CardClose.orderNo": "CA2507250308114804"}) {
		t.Errorf("CardClose: %s amounts=%v refs=%v", dump(ev), ev.Card.Amounts, ev.Card.References)
	}
	ev = one(t, `{"eventType":"CardCreate","cardId":"CIDV1","orderNo":"CC1"}`)
	if !reflect.DeepEqual(ev.Card.References, map[string]string{"CardCreate.orderNo": "CC1"}) {
		t.Errorf("CardCreate references = %v", ev.Card.References)
	}
}
