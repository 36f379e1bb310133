package upay

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// Field fidelity: every field UPay documents either lands in a named event field, asserted by value, or is
// listed in notStored with the reason, and every notStored field is named in the docs' "UPay fields" section.
//
// The seed (/work/shared/providers/seeds/002_2307f8c3baef6972.txt) has field tables but NO example payloads,
// so testdata/seed holds one payload per table (several for the transaction table), built from the table's
// fields, names and types exactly as documented; nothing in them is copied from the seed but field names.
// The transaction table's first rows (cardId, cardNumber, orderNo, customerNo, type) are cut off in the seed
// (its line 44 is the description of `type`); they are taken from PROVIDERS.md's UPay section.

const seedFile = "002_2307f8c3baef6972.txt"

// envelope is the global push format (seed lines 20-43), common to every event; its fields are keyed "env.<name>".
var envelope = []string{"env.event", "env.trace", "env.orderNo", "env.timestamp", "env.detail"}

// documented are the detail fields of each seed table, keyed by table.
var documented = map[string][]string{
	// Seed lines 44-104, plus the cut-off first rows from PROVIDERS.md.
	"transaction": {"cardId", "cardNumber", "orderNo", "customerNo", "type", "status", "amount", "direction",
		"merchantName", "currency", "transactionAt", "transactionId", "originalAmount", "originalCurrency", "reason", "fee",
		"thirdOrderNo", "merchantMcc", "merchantCategory", "merchantCountry"},
	"3DS_OTP": {"cardId", "cardNumber", "customerNo", "3dsCode", "orderNo", "merchants", "amount",
		"transactionCurrency", "transactionTime"}, // 105-145
	"3DS_CONFIRM": {"cardId", "cardNumber", "customerNo", "type", "validateCode", "url", "merchants",
		"transactionTime", "amount", "transactionCurrency"}, // 146-190
	"CA_APPLY":          {"cardId", "orderNo", "customerNo", "amount", "status", "subscribeAt"},               // 191-219
	"CR_RECHARGE":       {"cardId", "orderNo", "customerNo", "cardNumber", "amount", "status", "subscribeAt"}, // 220-252
	"NE_VERIFY":         {"cardId", "orderNo", "code", "cardNumber", "type", "customerNo"},                    // 253-294
	"KS_KYC":            {"customerNo", "documentType", "status", "reason"},                                   // 295-315
	"CSC_STATUS_CHANGE": {"cardId", "cardNumber", "status", "orderNo", "customerNo", "reason"},                // 316-343
	"MF_MATERIAL_FLOW": {"dispatchTime", "logisticsOrderNo", "logisticsCompanyName", "recipientAddress",
		"logisticsImage", "cardId"}, // 344-372
	"CS_APPROVED": {"orderNo", "cardId", "cardNumber", "customerNo", "cardStatus"}, // 373-399
	"CE_EVENT":    {"cardId", "event", "reason"},                                   // 400-416
	"CC_AUTHORIZATION": {"cardId", "cardNumber", "amount", "currency", "merchantMcc", "transactionId",
		"authorizationId", "transactionChannel"}, // 417-454
}

const (
	whyDetail  = "not stored itself, because it is the object that holds the event's fields, each listed on its own"
	whyTrace   = "not stored, because it links the pushes of one transaction and this event is not a transaction"
	whyTxnTime = "not stored, because the challenge is delivered in memory only and has no time field; the event time is the push timestamp"
)

// notStored are the documented fields kept nowhere, per table, with the reason.
var notStored = map[string]map[string]string{
	"transaction": {"env.detail": whyDetail},
	"3DS_OTP":     {"env.detail": whyDetail, "env.trace": whyTrace, "transactionTime": whyTxnTime},
	"3DS_CONFIRM": {"env.detail": whyDetail, "env.trace": whyTrace, "transactionTime": whyTxnTime},
	"CA_APPLY":    {"env.detail": whyDetail, "env.trace": whyTrace},
	"CR_RECHARGE": {"env.detail": whyDetail, "env.trace": whyTrace},
	"NE_VERIFY":   {"env.detail": whyDetail, "env.trace": whyTrace},
	"KS_KYC": {"env.detail": whyDetail, "env.trace": whyTrace,
		"documentType": "not stored, because it describes the holder's identity document; KYC keeps the state and reason"},
	"CSC_STATUS_CHANGE": {"env.detail": whyDetail, "env.trace": whyTrace},
	"MF_MATERIAL_FLOW": {"env.detail": whyDetail, "env.trace": whyTrace,
		"recipientAddress": "not stored, because it is the holder's postal address (personal data)",
		"logisticsImage":   "not stored, because it is a photo of the parcel and its label (personal data)"},
	"CS_APPROVED":      {"env.detail": whyDetail, "env.trace": whyTrace},
	"CE_EVENT":         {"env.detail": whyDetail, "env.trace": whyTrace},
	"CC_AUTHORIZATION": {"env.detail": whyDetail},
}

// asserter compares event fields by value and records which documented fields it asserted.
type asserter struct {
	t    *testing.T
	seen map[string]bool
}

func (a *asserter) is(got, want any, fields ...string) {
	a.t.Helper()
	if !reflect.DeepEqual(got, want) {
		a.t.Errorf("%v: got %s, want %s", fields, deep(got), deep(want))
	}
	for _, f := range fields {
		a.seen[f] = true
	}
}

// envelopeIs asserts the envelope fields every event maps the same way.
func (a *asserter) envelopeIs(ev event.Event, typ, id string, ms int64) {
	a.t.Helper()
	a.is(ev.Type, typ, "env.event")
	a.is(ev.ID, id, "env.orderNo")
	a.is(ev.OccurredAt, time.UnixMilli(ms).UTC(), "env.timestamp")
}

type seedExample struct {
	file  string // in testdata/seed
	table string // the seed table it is built from
	lines string // lines of the table in the seed file
	check func(a *asserter, ev event.Event)
}

var seedExamples = []seedExample{
	{"cc_consume.json", "transaction", "20-104", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "CC_CONSUME", "ON202511220101", 1763798470000)
		tx := ev.Transaction
		a.is(tx.References["trace"], "TR202511220101", "env.trace")
		a.is(ev.CardID, "UC10001", "cardId")
		a.is(ev.Card.Number, masked("532612", "1232"), "cardNumber")
		a.is(tx.References["orderNo"], "CO202511220101", "orderNo")
		a.is(ev.HolderID, "CUST77", "customerNo")
		a.is(tx.Type, cardsv1alpha1.TransactionPurchase, "type")
		a.is([]any{tx.Phase, tx.ProviderStatus}, []any{cardsv1alpha1.TransactionCompleted, "4"}, "status")
		a.is(tx.BillingAmount, amt("23.45", "USD"), "amount", "currency")
		a.is(tx.Direction, cardsv1alpha1.Debit, "direction")
		a.is(tx.Merchant, &cardsv1alpha1.Merchant{Name: "LAWSON SHIBUYA", MCC: "5411", Country: "JPN"},
			"merchantName", "merchantMcc", "merchantCountry")
		a.is(tx.OccurredAt, time.UnixMilli(1763798461000).UTC(), "transactionAt")
		a.is(tx.ID, "TX202511220101", "transactionId")
		a.is(tx.Amount, amt("3620", "JPY"), "originalAmount", "originalCurrency")
		a.is(tx.Fee, amt("0.35", "USD"), "fee")
		a.is(tx.Description, "Grocery Stores", "merchantCategory")
	}},
	{"cc_refund.json", "transaction", "20-104", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "CC_REFUND", "ON202511220102", 1763799600000)
		tx := ev.Transaction
		a.is(tx.References["trace"], "TR202511220101", "env.trace") // the purchase's trace: one link
		a.is([]any{tx.Type, tx.Phase, tx.Direction}, []any{cardsv1alpha1.TransactionRefund, cardsv1alpha1.TransactionCompleted,
			cardsv1alpha1.Credit}, "type", "status", "direction")
		a.is(tx.Amount, amt("23.45", "USD"), "amount", "currency")
	}},
	{"cc_withdraw_cash.json", "transaction", "20-104", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "CC_WITHDRAW_CASH", "ON202511220103", 1763801820000)
		tx := ev.Transaction
		a.is([]any{tx.Type, tx.Phase}, []any{cardsv1alpha1.TransactionWithdrawal, cardsv1alpha1.TransactionFailed}, "type", "status")
		a.is(tx.FailureReason, "Exceeds withdrawal limit", "reason")
		a.is(tx.Fee, amt("2.50", "USD"), "fee")
	}},
	{"cc_redeem.json", "transaction", "20-104", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "CC_REDEEM", "ON202511220104", 1763800200000)
		tx := ev.Transaction
		a.is([]any{tx.Type, tx.Phase}, []any{cardsv1alpha1.TransactionRedemption, cardsv1alpha1.TransactionPending}, "type", "status")
	}},
	{"cc_recharge.json", "transaction", "20-104", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "CC_RECHARGE", "ON202511220105", 1763799960000)
		tx := ev.Transaction
		a.is([]any{tx.Type, tx.Phase, tx.ProviderStatus, tx.Direction}, []any{cardsv1alpha1.TransactionTopUp,
			cardsv1alpha1.TransactionExpired, "5", cardsv1alpha1.Credit}, "type", "status", "direction")
		a.is(tx.References["thirdOrderNo"], "CR202511220009", "thirdOrderNo")
		a.is(tx.Amount, amt("200.00", "USD"), "amount", "currency")
	}},
	{"3ds_otp.json", "3DS_OTP", "105-145", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "3DS_OTP", "ON202511220106", 1763798700000)
		a.is(ev.CardID, "UC10001", "cardId")
		a.is(ev.Card.Number, masked("532612", "1232"), "cardNumber")
		a.is(ev.HolderID, "CUST77", "customerNo")
		a.is(ev.Challenge.Code, "570384", "3dsCode")
		a.is(ev.Challenge.ID, "3DS202511220106", "orderNo")
		a.is(ev.Challenge.Merchant, &cardsv1alpha1.Merchant{Name: "AMAZON MKTPL"}, "merchants")
		a.is(ev.Challenge.Amount, amt("59.99", "USD"), "amount", "transactionCurrency")
	}},
	{"3ds_confirm_code.json", "3DS_CONFIRM", "146-190", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "3DS_CONFIRM", "ON202511220107", 1763799120000)
		a.is(ev.CardID, "UC10001", "cardId")
		a.is(ev.Card.Number, masked("532612", "1232"), "cardNumber")
		a.is(ev.HolderID, "CUST77", "customerNo")
		a.is([]string{ev.Challenge.Method, ev.Challenge.Code}, []string{"OTP", "916247"}, "type", "validateCode")
		a.is(ev.Challenge.Merchant, &cardsv1alpha1.Merchant{Name: "BOOKING.COM"}, "merchants")
		a.is(ev.Challenge.Amount, amt("412.80", "EUR"), "amount", "transactionCurrency")
	}},
	{"3ds_confirm_link.json", "3DS_CONFIRM", "146-190", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "3DS_CONFIRM", "ON202511220108", 1763799240000)
		a.is([]string{ev.Challenge.Method, ev.Challenge.Code}, []string{"URL", "https://acs.upay.example/3ds/confirm?t=Hx72QaVn"},
			"type", "url")
	}},
	{"ca_apply.json", "CA_APPLY", "191-219", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "CA_APPLY", "ON202511220109", 1763800620000)
		a.is(ev.CardID, "UC20002", "cardId")
		a.is(ev.Card.References["CA_APPLY.orderNo"], "CA202511220109", "orderNo")
		a.is(ev.HolderID, "CUST78", "customerNo")
		a.is(ev.Card.References["CA_APPLY.amount"], "10.00", "amount") // no currency documented: verbatim
		a.is([]any{ev.Card.Phase, ev.Card.ProviderStatus}, []any{cardsv1alpha1.CardRequested, "apply:1"}, "status")
		a.is(ev.Card.References["CA_APPLY.subscribeAt"], "1763800610000", "subscribeAt")
	}},
	{"cr_recharge.json", "CR_RECHARGE", "220-252", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "CR_RECHARGE", "ON202511220110", 1763799900000)
		a.is(ev.CardID, "UC10001", "cardId")
		a.is(ev.Card.References["CR_RECHARGE.orderNo"], "CR202511220009", "orderNo")
		a.is(ev.HolderID, "CUST77", "customerNo")
		a.is(ev.Card.Number, masked("532612", "1232"), "cardNumber")
		a.is(ev.Card.References["CR_RECHARGE.amount"], "200", "amount")
		a.is(ev.Card.References["CR_RECHARGE.status"], "8", "status")
		a.is(ev.Card.References["CR_RECHARGE.subscribeAt"], "1763799880000", "subscribeAt")
		a.is(ev.Transaction, (*event.Transaction)(nil))
	}},
	{"ne_verify.json", "NE_VERIFY", "253-294", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "NE_VERIFY", "ON202511220111", 1763801520000)
		a.is(ev.CardID, "UC20002", "cardId")
		a.is(ev.Challenge.ID, "NE202511220111", "orderNo")
		a.is(ev.Challenge.Code, "308519", "code")
		a.is(ev.Card.Number, masked("428852", "7650"), "cardNumber")
		a.is([]string{ev.Challenge.Status, ev.Challenge.Purpose}, []string{"CARD_ACTIVATION", "activation"}, "type")
		a.is(ev.HolderID, "CUST78", "customerNo")
	}},
	{"ks_kyc.json", "KS_KYC", "295-315", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "KS_KYC", "ON202511220112", 1763800500000)
		a.is([]string{ev.HolderID, ev.CardID}, []string{"CUST79", ""}, "customerNo")
		a.is(ev.KYC, &event.KYC{State: cardsv1alpha1.KYCRejected, Reason: "Document image is blurred"}, "status", "reason")
	}},
	{"csc_status_change.json", "CSC_STATUS_CHANGE", "316-343", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "CSC_STATUS_CHANGE", "ON202511220113", 1763798400000)
		a.is(ev.CardID, "UC10001", "cardId")
		a.is(ev.Card.Number, masked("532612", "1232"), "cardNumber")
		a.is([]any{ev.Card.Phase, ev.Card.ProviderStatus}, []any{cardsv1alpha1.CardFrozen, "3"}, "status")
		a.is(ev.Card.References["CSC_STATUS_CHANGE.orderNo"], "CS202511220113", "orderNo")
		a.is(ev.HolderID, "CUST77", "customerNo")
		a.is(ev.Card.Reason, "frozen by user", "reason")
	}},
	{"mf_material_flow.json", "MF_MATERIAL_FLOW", "344-372", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "MF_MATERIAL_FLOW", "ON202511220114", 1763801100000)
		a.is(ev.Card.References["dispatchTime"], "2025-11-22 08:44:30", "dispatchTime")
		a.is(ev.Logistics, &event.Logistics{State: cardsv1alpha1.LogisticsShipped, Carrier: "SF Express",
			TrackingNumber: "SF1420587316044"}, "logisticsOrderNo", "logisticsCompanyName")
		a.is(ev.CardID, "UC20002", "cardId")
	}},
	{"cs_approved.json", "CS_APPROVED", "373-399", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "CS_APPROVED", "ON202511220115", 1763800800000)
		a.is(ev.Card.References["CS_APPROVED.orderNo"], "CA202511220109", "orderNo")
		a.is(ev.CardID, "UC20002", "cardId")
		a.is(ev.Card.Number, masked("428852", "7650"), "cardNumber")
		a.is(ev.HolderID, "CUST78", "customerNo")
		a.is([]any{ev.Card.Phase, ev.Card.Type, ev.Card.ProviderStatus},
			[]any{cardsv1alpha1.CardPendingActivation, cardsv1alpha1.CardPhysical, "2"}, "cardStatus")
	}},
	{"ce_event.json", "CE_EVENT", "400-416", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "CE_EVENT", "ON202511220116", 1763798440000)
		a.is(ev.CardID, "UC10001", "cardId")
		a.is([]any{ev.Card.Phase, ev.Card.ProviderStatus}, []any{cardsv1alpha1.CardFrozen, "Frozen"}, "event")
		a.is(ev.Card.Reason, "Suspicious activity", "reason")
	}},
	{"cc_authorization.json", "CC_AUTHORIZATION", "417-454", func(a *asserter, ev event.Event) {
		a.envelopeIs(ev, "CC_AUTHORIZATION", "ON202511220117", 1763798460000)
		a.is(ev.CardID, "UC10001", "cardId")
		a.is(ev.Card.Number, masked("532612", "1232"), "cardNumber")
		au := ev.Authorization
		a.is(au.Amount, *amt("42.10", "USD"), "amount", "currency")
		a.is(au.Merchant, &cardsv1alpha1.Merchant{MCC: "5814"}, "merchantMcc")
		a.is(au.TransactionID, "TX202511220117", "transactionId")
		a.is(au.AuthorizationID, "AU202511220117", "authorizationId")
		a.is(au.Channel, "ECOMMERCE", "transactionChannel")
		a.is(au.References["trace"], "TR202511220117", "env.trace")
		a.is(ev.Transaction, (*event.Transaction)(nil)) // never spend: the ingester opens a Pending Authorization
	}},
}

func TestSeedFidelity(t *testing.T) {
	seen := map[string]map[string]bool{}
	for _, x := range seedExamples {
		t.Run(x.file, func(t *testing.T) {
			payload, err := os.ReadFile(filepath.Join("testdata", "seed", x.file))
			if err != nil {
				t.Fatal(err)
			}
			// The callback as UPay sends it: signed by the package's Encoder.
			ep := endpoint(nil)
			h, body, err := Encode(ep, payload, now)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			res, err := Adapter{}.Decode(&adapter.Request{Header: h, Body: body, Received: now, Endpoint: ep})
			if err != nil {
				t.Fatalf("Decode (%s lines %s): %v", seedFile, x.lines, err)
			}
			if len(res.Events) != 1 {
				t.Fatalf("got %d events, want 1", len(res.Events))
			}
			ev := res.Events[0]
			if ev.Balance != nil {
				t.Errorf("Balance set from %s; UPay documents no card balance field", x.file)
			}
			if seen[x.table] == nil {
				seen[x.table] = map[string]bool{}
			}
			x.check(&asserter{t: t, seen: seen[x.table]}, ev)
		})
	}
	for table, fields := range documented {
		for _, f := range append(slices.Clone(envelope), fields...) {
			_, skipped := notStored[table][f]
			if seen[table][f] == skipped {
				t.Errorf("%s field %q: asserted %v, in notStored %v; want exactly one", table, f, seen[table][f], skipped)
			}
		}
		for f := range notStored[table] {
			if !slices.Contains(fields, f) && !slices.Contains(envelope, f) {
				t.Errorf("%s: notStored lists %q, which the seed does not document", table, f)
			}
		}
	}
}

// TestFieldsDocumented checks that docs/providers.md names every field UPay sends that is not stored.
func TestFieldsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "providers.md"))
	if err != nil {
		t.Fatal(err)
	}
	const heading = "#### UPay fields"
	i := strings.Index(string(doc), heading)
	if i < 0 {
		t.Fatalf("docs/providers.md has no %q section", heading)
	}
	section := string(doc[i+len(heading):])
	if end := regexp.MustCompile(`(?m)^#{1,4} `).FindStringIndex(section); end != nil {
		section = section[:end[0]]
	}
	for table, fields := range notStored {
		for f := range fields {
			name := strings.TrimPrefix(f, "env.")
			if !strings.Contains(section, "`"+name+"`") {
				t.Errorf("%s field %q is not stored but the UPay fields section does not name `%s`", table, f, name)
			}
		}
	}
}
