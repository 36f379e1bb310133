package upay

import (
	"reflect"
	"testing"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// Regression tests for the UPay defects of the field-fidelity issue, one per defect.

// decodeOne decodes a correctly signed body and returns its single event.
func decodeOne(t *testing.T, body string) event.Event {
	t.Helper()
	res, err := Adapter{}.Decode(signed(t, []byte(body)))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(res.Events) != 1 {
		t.Fatalf("got %d events, want 1", len(res.Events))
	}
	return res.Events[0]
}

// A transaction is often the first event of a card: the number it carries must reach the card reduced, not
// be dropped (the card was created with no BIN/last4 at all).
func TestTransactionCarriesReducedCardNumber(t *testing.T) {
	for _, name := range []string{"CC_CONSUME", "CC_REFUND", "CC_WITHDRAW_CASH", "CC_REDEEM", "CC_RECHARGE"} {
		ev := decodeOne(t, push(name, "ON-N-"+name, 0, `{"cardId":"UC90001","cardNumber":"`+pan1+`","orderNo":"O1",
"customerNo":"CUST90","type":2,"status":1,"amount":"1.00","direction":2,"currency":"USD","transactionAt":1763798340000,
"transactionId":"TX-N-1"}`))
		if ev.Card == nil || !reflect.DeepEqual(ev.Card.Number, masked("532612", "1232")) {
			t.Errorf("%s: Card = %s, want number 532612…1232", name, deep(ev.Card))
		}
	}
	for _, name := range []string{"3DS_OTP", "3DS_CONFIRM"} {
		ev := decodeOne(t, push(name, "ON-N-"+name, 0, `{"cardId":"UC90001","cardNumber":"`+pan1+`","customerNo":"CUST90",
"type":"code","validateCode":"111222","3dsCode":"111222","merchants":"M","amount":"1.00","transactionCurrency":"USD"}`))
		if ev.Card == nil || !reflect.DeepEqual(ev.Card.Number, masked("532612", "1232")) {
			t.Errorf("%s: Card = %s, want number 532612…1232", name, deep(ev.Card))
		}
	}
}

// KYC is about the holder: the event names the holder and no card, so the CardHolder keeps it before any card.
func TestKYCIsHolderLevel(t *testing.T) {
	ev := decodeOne(t, push("KS_KYC", "ON-K-1", 0, `{"customerNo":"CUST91","documentType":"2","status":"2","reason":"blurred"}`))
	if ev.HolderID != "CUST91" || ev.CardID != "" {
		t.Errorf("HolderID = %q, CardID = %q; want the holder CUST91 and no card", ev.HolderID, ev.CardID)
	}
	if ev.KYC == nil || ev.KYC.State != cardsv1alpha1.KYCRejected || ev.KYC.Reason != "blurred" {
		t.Errorf("KYC = %s", deep(ev.KYC))
	}
}

// thirdOrderNo, trace and the detail's orderNo are what reconciliation matches a transaction by.
func TestTransactionReferences(t *testing.T) {
	ev := decodeOne(t, `{"event":"CC_RECHARGE","trace":"tr-link-7","orderNo":"ON-REF-1","timestamp":1763798401000,
"detail":{"cardId":"UC90001","orderNo":"ORD-55","customerNo":"CUST90","type":1,"status":1,"amount":"10.00","direction":1,
"currency":"USD","transactionAt":1763798340000,"transactionId":"TX-REF-1","thirdOrderNo":"MER-777"}}`)
	want := map[string]string{"trace": "tr-link-7", "orderNo": "ORD-55", "thirdOrderNo": "MER-777"}
	if ev.Transaction == nil || !reflect.DeepEqual(ev.Transaction.References, want) {
		t.Errorf("References = %s, want %v", deep(ev.Transaction), want)
	}
}

// CA_APPLY's amount is what the holder paid for the application: a card amount, kept. UPay sends no currency
// with it, so without one it is kept verbatim among the references rather than given a guessed currency.
func TestApplicationAmountKept(t *testing.T) {
	ev := decodeOne(t, push("CA_APPLY", "ON-CA-1", 0, `{"cardId":"UC90002","orderNo":"CA-1","customerNo":"CUST90",
"amount":"10.00","status":1,"subscribeAt":1763798390000}`))
	if ev.Card == nil || ev.Card.References["CA_APPLY.amount"] != "10.00" {
		t.Errorf("Card = %s, want references CA_APPLY.amount = 10.00", deep(ev.Card))
	}
	ev = decodeOne(t, push("CA_APPLY", "ON-CA-2", 0, `{"cardId":"UC90002","orderNo":"CA-2","customerNo":"CUST90",
"amount":"10.5","currency":"usd","status":1}`))
	if ev.Card == nil || !reflect.DeepEqual(ev.Card.Amounts, map[string]cardsv1alpha1.Money{"CA_APPLY.amount": *amt("10.50", "USD")}) {
		t.Errorf("Card = %s, want amounts CA_APPLY.amount = 10.50 USD", deep(ev.Card))
	}
}

// CR_RECHARGE is a recharge application awaiting payment, not money on the card: its amount is a card amount.
func TestRechargeApplicationAmountKept(t *testing.T) {
	ev := decodeOne(t, push("CR_RECHARGE", "ON-CR-1", 0, `{"cardId":"UC90001","orderNo":"CR-1","customerNo":"CUST90",
"cardNumber":"`+pan1+`","amount":50,"status":8,"subscribeAt":1763798390000}`))
	if ev.Transaction != nil {
		t.Errorf("CR_RECHARGE made a transaction %s; the top-up itself arrives as CC_RECHARGE", deep(ev.Transaction))
	}
	want := map[string]string{"CR_RECHARGE.amount": "50", "CR_RECHARGE.orderNo": "CR-1", "CR_RECHARGE.status": "8",
		"CR_RECHARGE.subscribeAt": "1763798390000"}
	if ev.Card == nil || !reflect.DeepEqual(ev.Card.References, want) {
		t.Errorf("Card = %s, want references %v", deep(ev.Card), want)
	}
}

func TestDispatchTimeKept(t *testing.T) {
	ev := decodeOne(t, push("MF_MATERIAL_FLOW", "ON-MF-1", 0, `{"dispatchTime":"2025-11-21 10:00:00","logisticsOrderNo":"SF1",
"logisticsCompanyName":"SF Express","recipientAddress":"x","logisticsImage":"y","cardId":"UC90002"}`))
	if ev.Card == nil || ev.Card.References["dispatchTime"] != "2025-11-21 10:00:00" {
		t.Errorf("Card = %s, want references dispatchTime verbatim", deep(ev.Card))
	}
}

// Status 5 "Unposted" is the outcome opposite to 4 "Posted": it ended without being booked. Pending would
// keep it open forever (3 "Processing" is the open state).
func TestUnpostedIsExpired(t *testing.T) {
	ev := decodeOne(t, push("CC_CONSUME", "ON-U-5", 0, `{"cardId":"UC90001","type":2,"status":5,"amount":"3.00",
"direction":2,"currency":"USD","transactionId":"TX-U-5"}`))
	if ev.Transaction.Phase != cardsv1alpha1.TransactionExpired || ev.Transaction.ProviderStatus != "5" {
		t.Errorf("phase %q (%q), want Expired (5)", ev.Transaction.Phase, ev.Transaction.ProviderStatus)
	}
}

// Status values the seed leaves open are acknowledged as Unknown with the value verbatim, never a 400.
func TestUnknownStatusesAreNeutral(t *testing.T) {
	txn := decodeOne(t, push("CC_CONSUME", "ON-X-6", 0, `{"cardId":"UC90001","status":6,"amount":"1.00","currency":"USD",
"transactionId":"TX-X-6"}`))
	if txn.Transaction.Phase != cardsv1alpha1.TransactionUnknown || txn.Transaction.ProviderStatus != "6" {
		t.Errorf("transaction status 6: %s", deep(txn.Transaction))
	}
	for body, status := range map[string]string{
		push("CSC_STATUS_CHANGE", "ON-X-11", 0, `{"cardId":"UC90001","status":"11"}`): "11",
		push("CS_APPROVED", "ON-X-3", 0, `{"cardId":"UC90001","cardStatus":3}`):       "3",
		push("CE_EVENT", "ON-X-D", 0, `{"cardId":"UC90001","event":"Deleted"}`):       "Deleted",
		push("CSC_STATUS_CHANGE", "ON-X-M", 0, `{"cardId":"UC90001"}`):                "",
	} {
		ev := decodeOne(t, body)
		if ev.Card == nil || ev.Card.Phase != cardsv1alpha1.CardUnknown || ev.Card.ProviderStatus != status {
			t.Errorf("%s: Card = %s, want Unknown with %q", ev.Type, deep(ev.Card), status)
		}
	}
	noStatus := decodeOne(t, push("CC_REFUND", "ON-X-N", 0, `{"cardId":"UC90001","amount":"1.00","currency":"USD",
"transactionId":"TX-X-N"}`))
	if noStatus.Transaction.Phase != cardsv1alpha1.TransactionUnknown || noStatus.Transaction.ProviderStatus != "" {
		t.Errorf("transaction without status: %s", deep(noStatus.Transaction))
	}
	kyc := decodeOne(t, push("KS_KYC", "ON-X-K", 0, `{"customerNo":"CUST91","status":"9"}`))
	if kyc.HolderID != "CUST91" || kyc.KYC == nil || kyc.KYC.State != cardsv1alpha1.KYCUnknown || kyc.KYC.ProviderStatus != "9" {
		t.Errorf("KYC status 9: %s, want the holder's KYC Unknown with status 9 verbatim", deep(kyc))
	}
}

// An authorization request is never spend: it opens no transaction of its own (the ingester records it as a
// Pending Authorization), and a transaction still processing is Pending.
func TestAuthorizationStaysPending(t *testing.T) {
	ev := decodeOne(t, string(sample(t, "upay-authorization.json")))
	if ev.Transaction != nil || ev.Authorization == nil {
		t.Errorf("CC_AUTHORIZATION decoded to transaction %s, authorization %s", deep(ev.Transaction), deep(ev.Authorization))
	}
	ev = decodeOne(t, push("CC_CONSUME", "ON-P-3", 0, `{"cardId":"UC90001","status":3,"amount":"1.00","currency":"USD",
"transactionId":"TX-P-3"}`))
	if ev.Transaction.Phase != cardsv1alpha1.TransactionPending {
		t.Errorf("processing purchase phase %q, want Pending", ev.Transaction.Phase)
	}
}

// Only CS_APPROVED's virtual card (cardStatus 1) starts Active; a physical card waits for activation and an
// application is only Requested.
func TestPhysicalCardNotActiveOnCreation(t *testing.T) {
	for body, want := range map[string]cardsv1alpha1.CardPhase{
		push("CS_APPROVED", "ON-PH-2", 0, `{"cardId":"UC90003","cardNumber":"`+pan2+`","customerNo":"C","cardStatus":2}`): cardsv1alpha1.CardPendingActivation,
		push("CA_APPLY", "ON-PH-A", 0, `{"cardId":"UC90003","customerNo":"C","amount":"1","status":2}`):                   cardsv1alpha1.CardRequested,
	} {
		if ev := decodeOne(t, body); ev.Card == nil || ev.Card.Phase != want {
			t.Errorf("%s: Card = %s, want %s", ev.Type, deep(ev.Card), want)
		}
	}
}
