package prepaidify

import (
	"testing"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// One focused test per defect of the issue; each failed on the adapter as it was before the fix.

func mustDecode(t *testing.T, body string) *adapter.Result {
	t.Helper()
	res, err := decode(t, body)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return res
}

func oneEvent(t *testing.T, body string) event.Event {
	t.Helper()
	res := mustDecode(t, body)
	if res.Unknown || len(res.Events) != 1 {
		t.Fatalf("want exactly one event, got unknown=%v %s", res.Unknown, asJSON(t, res.Events))
	}
	return res.Events[0]
}

// A cardholder audit result is a holder fact: it names the holder and no card, so the CardHolder keeps it
// before any card exists. An audit status the docs do not list is acknowledged as unknown, not refused.
func TestRegressionAuditIsAHolderFact(t *testing.T) {
	ev := oneEvent(t, `{"holderId":"100963","auditStatus":3,"errMsg":"ID document expired on 2024-01-01","mobile":"+100","idno":"X1"}`)
	if ev.HolderID != "100963" || ev.CardID != "" || ev.Card != nil {
		t.Errorf("audit result must name the holder and no card: %s", asJSON(t, ev))
	}
	if ev.KYC == nil || ev.KYC.State != cardsv1alpha1.KYCRejected || ev.KYC.Reason != "ID document expired on 2024-01-01" {
		t.Errorf("KYC = %+v, want Rejected with errMsg verbatim", ev.KYC)
	}
	res, err := decode(t, `{"holderId":"100963","auditStatus":9,"errMsg":"new state"}`)
	if err != nil || len(res.Events) != 1 || res.Events[0].KYC == nil || res.Events[0].KYC.State != cardsv1alpha1.KYCUnknown ||
		res.Events[0].KYC.ProviderStatus != "9" || res.Events[0].HolderID != "100963" || string(res.Ack.Body) != string(physicalAck.Body) {
		t.Errorf("undocumented auditStatus: %+v, %v; want acknowledged, the holder's KYC Unknown with status 9 verbatim", res, err)
	}
}

// requestNo identifies the KYC request, never the holder: it must not become a holder ID.
func TestRegressionKYCResultRequestNoIsNotAHolder(t *testing.T) {
	ev := oneEvent(t, `{"kycStatus":"rejected","requestNo":"REQ-124"}`)
	want := &event.Failure{Kind: TypeKYCResult, ProviderStatus: "rejected", Reference: "REQ-124"}
	if ev.HolderID != "" || ev.CardID != "" || ev.KYC != nil || ev.Failure == nil || *ev.Failure != *want {
		t.Errorf("rejection without holder: %s; want only Failure %+v", asJSON(t, ev), want)
	}
	res := mustDecode(t, `{"kycStatus":"approved","requestNo":"REQ-125"}`)
	if res.Unknown || len(res.Events) != 0 {
		t.Errorf("approval without holder: %s; want acknowledged with nothing to attach", asJSON(t, res.Events))
	}
	ev = oneEvent(t, `{"kycStatus":"approved","requestNo":"REQ-126","userId":"u_9"}`)
	if ev.HolderID != "u_9" || ev.KYC == nil || ev.KYC.State != cardsv1alpha1.KYCApproved {
		t.Errorf("approval with a holder ID: %s", asJSON(t, ev))
	}
	res, err := decode(t, `{"kycStatus":"expired","requestNo":"REQ-127"}`)
	if err != nil || !res.Unknown {
		t.Errorf("undocumented kycStatus: %+v, %v; want acknowledged as unknown", res, err)
	}
}

// A FREEZE_ACCOUNT that lists no card freezes every card of the holder: a holder event with the risk action
// and the card facts, and no card ID.
func TestRegressionFreezeAccountWithoutCards(t *testing.T) {
	ev := oneEvent(t, `{"eventType":"RISK_CONTROL","eventId":"ev_fa","webhookSubscribeId":"w","data":{"userId":"u_6","cardIds":[],
		"numbers":[],"type":"FREEZE_ACCOUNT","riskControlReasonType":"CARD_OVERDRAW","reason":"overdrawn twice","gmtCreate":1700000000}}`)
	if ev.HolderID != "u_6" || ev.CardID != "" || ev.ID != "ev_fa" || ev.OccurredAt != utc(2023, 11, 14, 22, 13, 20) {
		t.Errorf("identity: %s", asJSON(t, ev))
	}
	if ev.Risk == nil || *ev.Risk != (event.RiskAction{Action: "FREEZE_ACCOUNT", Reason: "CARD_OVERDRAW: overdrawn twice"}) {
		t.Errorf("Risk = %+v", ev.Risk)
	}
	if c := ev.Card; c == nil || c.Phase != cardsv1alpha1.CardFrozen || c.ProviderStatus != "FREEZE_ACCOUNT" || c.Reason != "CARD_OVERDRAW: overdrawn twice" {
		t.Errorf("Card = %+v, want Frozen for every card of the holder", c)
	}
	// Listed cards are frozen one by one, and the account as a whole too.
	res := mustDecode(t, `{"eventType":"RISK_CONTROL","eventId":"ev_fb","webhookSubscribeId":"w","data":{"userId":"u_6","cardIds":["c_1"],"type":"FREEZE_ACCOUNT"}}`)
	if len(res.Events) != 2 || res.Events[0].CardID != "c_1" || res.Events[1].CardID != "" || res.Events[1].Risk == nil {
		t.Errorf("FREEZE_ACCOUNT with a card: %s", asJSON(t, res.Events))
	}
}

// Every event that carries the card's balance sets it, not only CREATE_CARD; a deleted card holds nothing.
func TestRegressionBalanceAfterEveryEvent(t *testing.T) {
	ev := oneEvent(t, `{"transactionId":"t_b","cardId":"c_1","transactionAmount":-1250,"transactionCurrency":"USD","status":"COMPLETE","balance":8750}`)
	if ev.Balance == nil || ev.Balance.Available != *usd("87.50") {
		t.Errorf("transaction balance = %+v, want 87.50 USD", ev.Balance)
	}
	ev = oneEvent(t, `{"eventType":"DELETE_CARD_SUCCESS","eventId":"e","webhookSubscribeId":"w","data":{"cardId":"c_1","userId":"u","type":"USER_DELETE","refundAmount":1200}}`)
	if ev.Balance == nil || ev.Balance.Available != *usd("0.00") {
		t.Errorf("balance after deletion = %+v, want 0.00 USD", ev.Balance)
	}
	if ev.Card == nil || ev.Card.Amounts["refundAmount"] != *usd("12.00") {
		t.Errorf("refundAmount = %+v, want card amount 12.00 USD", ev.Card)
	}
	ev = oneEvent(t, `{"eventType":"CREATE_CARD","eventId":"e","webhookSubscribeId":"w","data":{"cardId":"c_1","deposit":5000,"consume":2450,"balance":2550}}`)
	if ev.Balance == nil || ev.Balance.Available != *usd("25.50") || ev.Card.Amounts["deposit"] != *usd("50.00") || ev.Card.Amounts["consume"] != *usd("24.50") {
		t.Errorf("CREATE_CARD balance %+v, amounts %+v", ev.Balance, ev.Card.Amounts)
	}
}

// orderNo and the other provider IDs are kept verbatim for reconciliation.
func TestRegressionOrderNoKept(t *testing.T) {
	ev := oneEvent(t, `{"transactionId":"t_o","cardId":"c_1","status":"COMPLETE","transactionAmount":-100,"orderNo":"000123"}`)
	if ev.Transaction.References["orderNo"] != "000123" {
		t.Errorf("transaction references = %v", ev.Transaction.References)
	}
	ev = oneEvent(t, `{"eventType":"CREATE_CARD","eventId":"e","webhookSubscribeId":"w","data":{"cardId":"c_1","orderNo":"999","cardSeqNo":"CAEE7QW"}}`)
	if ev.Card.References["orderNo"] != "999" || ev.Card.References["cardSeqNo"] != "CAEE7QW" {
		t.Errorf("card references = %v", ev.Card.References)
	}
	ev = oneEvent(t, `{"eventType":"CREATE_CARD_FAIL","eventId":"e","webhookSubscribeId":"w","data":{"cardId":"c_3","userId":"u_3","orderNo":"998"}}`)
	if ev.Card.References["orderNo"] != "998" || ev.Failure == nil || ev.Failure.Reference != "998" {
		t.Errorf("CREATE_CARD_FAIL: %s", asJSON(t, ev))
	}
	ev = oneEvent(t, `{"no":"1177095467041951744","cardId":"pc","cardNo":"535522******1234","currency":"EUR","amount":1,"tradeId":"tr","tradeType":151,"tradeStatus":1,"tradeSrc":"S"}`)
	if r := ev.Transaction.References; r["no"] != "1177095467041951744" || r["tradeType"] != "151" || r["tradeSrc"] != "S" {
		t.Errorf("bank card references = %v", r)
	}
}

// An authorization is never spend: it stays a Pending Authorization until the settlement arrives.
func TestRegressionAuthorizationsPending(t *testing.T) {
	ev := oneEvent(t, `{"transactionId":"t_a","cardId":"c_1","preAuthAmount":-1992,"preAuthCurrency":"USD","status":"PENDING"}`)
	if tx := ev.Transaction; tx.Type != cardsv1alpha1.TransactionAuthorization || tx.Phase != cardsv1alpha1.TransactionPending {
		t.Errorf("virtual pre-authorization: %s / %s", tx.Type, tx.Phase)
	}
	ev = oneEvent(t, `{"cardId":"pc","cardNo":"535522******1234","currency":"EUR","amount":9,"tradeId":"tr","tradeType":151,"tradeStatus":1,"tradeSrc":"A"}`)
	if tx := ev.Transaction; tx.Type != cardsv1alpha1.TransactionAuthorization || tx.Phase != cardsv1alpha1.TransactionPending {
		t.Errorf("physical authorization record: %s / %s", tx.Type, tx.Phase)
	}
	ev = oneEvent(t, `{"cardId":"pc","cardNo":"535522******1234","currency":"EUR","amount":9,"tradeId":"tr","tradeType":151,"tradeStatus":1,"tradeSrc":"S"}`)
	if tx := ev.Transaction; tx.Type != cardsv1alpha1.TransactionPurchase || tx.Phase != cardsv1alpha1.TransactionCompleted {
		t.Errorf("physical settlement record: %s / %s", tx.Type, tx.Phase)
	}
}

// Physical cards are never made Active by this adapter: no physical notification reports an activation.
func TestRegressionPhysicalCardsNotActive(t *testing.T) {
	for _, b := range []string{
		`{"cardId":"pc","cardNo":"535522******1234","currency":"EUR","amount":9,"tradeId":"tr","tradeType":100,"tradeStatus":1,"tradeSrc":"S"}`,
		`{"cardId":"pc","cardNo":"535522******1234","currency":"EUR","amount":9,"tradeId":"tr","tradeType":151,"tradeStatus":1,"tradeSrc":"A"}`,
	} {
		ev := oneEvent(t, b)
		if ev.Card == nil || ev.Card.Type != cardsv1alpha1.CardPhysical || ev.Card.Phase != "" {
			t.Errorf("physical card facts %+v: want type Physical and no phase", ev.Card)
		}
	}
}

// Card numbers are kept as BIN and last four wherever they appear, also in RISK_CONTROL and physical trades.
func TestRegressionCardNumbersReduced(t *testing.T) {
	res := mustDecode(t, `{"eventType":"RISK_CONTROL","eventId":"e","webhookSubscribeId":"w","data":{"userId":"u","cardIds":["c_1","c_2"],
		"numbers":["`+visaPAN+`","5555 5555 5555 4444"],"type":"FREEZE_CARD"}}`)
	if len(res.Events) != 2 || res.Events[0].Card.Number == nil || res.Events[1].Card.Number == nil ||
		*res.Events[0].Card.Number != (cardsv1alpha1.MaskedNumber{BIN: "411111", Last4: "1111"}) ||
		*res.Events[1].Card.Number != (cardsv1alpha1.MaskedNumber{BIN: "555555", Last4: "4444"}) {
		t.Errorf("RISK_CONTROL numbers: %s", asJSON(t, res.Events))
	}
	ev := oneEvent(t, `{"cardId":"pc","cardNumber":"`+mcPAN+`","currency":"EUR","amount":9,"tradeId":"tr","tradeType":151,"tradeStatus":1,"tradeSrc":"S"}`)
	if ev.Card.Number == nil || *ev.Card.Number != (cardsv1alpha1.MaskedNumber{BIN: "555555", Last4: "4444"}) {
		t.Errorf("bank card cardNumber: %+v", ev.Card.Number)
	}
}

// Status values the docs leave open are stored verbatim with a neutral phase, never refused.
func TestRegressionUnknownStatusesNeutral(t *testing.T) {
	ev := oneEvent(t, `{"eventType":"CREATE_CARD","eventId":"e","webhookSubscribeId":"w","data":{"cardId":"c_1","status":"REVIEWING"}}`)
	if ev.Card.Phase != cardsv1alpha1.CardUnknown || ev.Card.ProviderStatus != "REVIEWING" {
		t.Errorf("CREATE_CARD status: %+v", ev.Card)
	}
	ev = oneEvent(t, `{"transactionId":"t","cardId":"c","status":"SETTLED","transactionAmount":-5}`)
	if ev.Transaction.Phase != cardsv1alpha1.TransactionUnknown || ev.Transaction.ProviderStatus != "SETTLED" {
		t.Errorf("transaction status: %+v", ev.Transaction)
	}
	ev = oneEvent(t, `{"cardId":"pc","cardNo":"535522******1234","currency":"EUR","amount":-2,"tradeId":"tr","tradeType":500,"tradeStatus":3}`)
	if ev.Transaction.Phase != cardsv1alpha1.TransactionUnknown || ev.Transaction.ProviderStatus != "3" {
		t.Errorf("tradeStatus: %+v", ev.Transaction)
	}
	ev = oneEvent(t, `{"eventType":"RISK_CONTROL","eventId":"e","webhookSubscribeId":"w","data":{"cardIds":["c_1"],"type":"UNFREEZE_CARD"}}`)
	if ev.Card.Phase != cardsv1alpha1.CardUnknown || ev.Card.ProviderStatus != "UNFREEZE_CARD" {
		t.Errorf("RISK_CONTROL type: %+v", ev.Card)
	}
}
