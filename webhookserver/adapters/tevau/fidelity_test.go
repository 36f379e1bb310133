package tevau

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// The fidelity test sends every example payload of Tevau's docs through Decode, signed as Tevau signs, and
// checks that each documented field either lands in a named event field (asserted by value) or is listed in
// notStored with the reason. The seed (seeds/003_f93f704af11b7e9c.txt, "8.2 Card Status") has one example,
// CardClose; the other event types' examples come from Tevau's public API docs that PROVIDERS.md condenses.

// seedFile is the provider document the seed/ payloads are copied from.
const seedFile = "/work/shared/providers/seeds/003_f93f704af11b7e9c.txt"

// purchaseFields are the documented fields of every 8.5 transaction callback.
var purchaseFields = []string{"orderId", "cardId", "eventType", "status", "transAmount", "transCurrency",
	"merchantData.mccCode", "merchantData.merchantId", "merchantData.merchantName", "merchantData.merchantCountry",
	"details.subOrderId", "details.principal", "details.fxFee", "details.authorizationFee", "details.atmFee",
	"details.channelPrincipal", "details.channelAtmFee", "details.channelAuthorizationFee", "details.channelFxFee",
	"details.subStatus", "details.subType", "details.remark", "details.createTime", "details.createTimeStamp", "channel"}

func with(base []string, more ...string) []string {
	return append(append([]string{}, base...), more...)
}

var refundFields = []string{"details.refund.refund", "details.refund.refundFee", "details.refund.channelRefund",
	"details.refund.channelRefundFee"}

// documented are the fields of each event type, as Tevau's examples show them (the docs have no field
// tables); nested fields are written parent.child.
var documented = map[string][]string{
	"CardClose": {"eventType", "cardId", "orderNo", "totalAmount"},
	"Kyc":       {"eventType", "userCode", "auditState", "auditRemark"},
	"CardTopup": {"eventType", "cardId", "rechargeAmount", "orderNo"},
	"3DS": {"authId", "cardId", "cardPan", "txnCurrency", "txnAmount", "cardAcceptorLocationName", "createdTime",
		"expireTimeStamp", "createTimeStamp", "created", "createdStamp", "eventType"},
	"Authorization": purchaseFields,
	"Clearing":      with(purchaseFields, refundFields...),
	"Refund":        with(purchaseFields, refundFields...),
	"Reversal": with(purchaseFields, "details.reversal.reversal", "details.reversal.reversalFee",
		"details.reversal.channelReversal", "details.reversal.channelReversalFee"),
}

const (
	whyCreateTime = "not stored, because it is details.createTimeStamp rounded to the second; the millisecond stamp is kept"
	whyEcho       = "not stored on the refund/reversal, because it repeats the original purchase's value, which the purchase's own Authorization/Clearing callback stores on the orderId transaction"
)

// echoed are the purchase fields a Refund or Reversal repeats.
var echoed = []string{"transAmount", "transCurrency", "details.principal", "details.fxFee", "details.authorizationFee",
	"details.atmFee", "details.channelPrincipal", "details.channelAtmFee", "details.channelAuthorizationFee",
	"details.channelFxFee"}

func echoes() map[string]string {
	m := map[string]string{"details.createTime": whyCreateTime}
	for _, f := range echoed {
		m[f] = whyEcho
	}
	return m
}

// notStored lists, per event type, the documented fields that are deliberately not stored, with the reason.
var notStored = map[string]map[string]string{
	"3DS": {
		"created":         "not stored separately, because it is the same instant as createdStamp in Tevau's example; read as the event time only when createdStamp is absent",
		"createTimeStamp": "not stored, because its meaning is undocumented (in Tevau's example it equals expireTimeStamp); read as the event time only when createdStamp and created are absent",
		"createdTime":     "not stored, because its meaning is undocumented (in Tevau's example it is later than the expiry); read as the event time only when no other creation time is sent",
	},
	"Authorization": {"details.createTime": whyCreateTime},
	"Clearing": {
		"details.createTime":              whyCreateTime,
		"details.refund.refund":           "not stored on the clearing, because it is the purchase's refund summary (zero in the example); each refund is stored from its own Refund callback",
		"details.refund.refundFee":        "not stored on the clearing, because it is part of the purchase's refund summary; each refund is stored from its own Refund callback",
		"details.refund.channelRefund":    "not stored on the clearing, because it is part of the purchase's refund summary; each refund is stored from its own Refund callback",
		"details.refund.channelRefundFee": "not stored on the clearing, because it is part of the purchase's refund summary; each refund is stored from its own Refund callback",
	},
	"Refund":   echoes(),
	"Reversal": echoes(),
}

// fidelityCase is one example payload and the assertions that name the fields it stores.
type fidelityCase struct {
	file   string // under testdata/
	source string // where the payload was copied from
	event  string // its eventType, which selects the documented fields
	check  func(c *checker, ev event.Event)
}

var fidelityCases = []fidelityCase{{
	file: "seed/card-close.json", source: seedFile + " lines 104-109 (8.2 Card Status, Body Params example), verbatim",
	event: "CardClose", check: checkCardClose,
}, {
	// The request sample repeats the example; only the shell quoting (--data-raw '…') was removed.
	file: "seed/card-close-curl.json", source: seedFile + " lines 141-146 (8.2 request sample, curl --data-raw), shell quoting removed",
	event: "CardClose", check: checkCardClose,
}, {
	file: "reference/kyc.json", source: "https://api-en.tevau.io/327069061e0 (8.1 KYC Results example)",
	event: "Kyc", check: func(c *checker, ev event.Event) {
		c.eq("userCode", ev.HolderID, "xxx")
		c.eq("auditState", kycOf(ev).State, cardsv1alpha1.KYCApproved)
		c.eq("auditRemark", kycOf(ev).Reason, "Authentication (KYC) has passed")
	},
}, {
	file: "reference/card-topup.json", source: "https://api-en.tevau.io/327069063e0 (8.3 Changes in card balance example)",
	event: "CardTopup", check: func(c *checker, ev event.Event) {
		c.eq("cardId", ev.CardID, "CIDV2504072011100869")
		c.eq("orderNo", ev.ID, "CD2507170545107911")
		c.eq("orderNo", txOf(ev).ID, "CD2507170545107911")
		c.eq("rechargeAmount", moneyStr(txOf(ev).Amount), "10.00 USD")
		c.also(txOf(ev).Type, cardsv1alpha1.TransactionTopUp)
		c.also(txOf(ev).Direction, cardsv1alpha1.Credit)
		c.also(ev.Balance, (*event.Balance)(nil))
	},
}, {
	file: "reference/3ds.json", source: "/work/shared/providers/samples/tevau-3ds.json = https://api-docs.tevau.io/283621456e0 (8.4 3DS example)",
	event: "3DS", check: func(c *checker, ev event.Event) {
		ch := ev.Challenge
		if ch == nil {
			c.t.Fatal("3DS: no challenge")
		}
		c.eq("authId", ch.ID, "0f9906e0-b5e1-4b98-a55b-4f197b0a964a")
		c.eq("authId", ev.ID, "0f9906e0-b5e1-4b98-a55b-4f197b0a964a")
		c.eq("cardId", ev.CardID, "CIDV013855800204")
		c.eq("cardPan", cardOf(ev).Number, &cardsv1alpha1.MaskedNumber{Last4: "0881"})
		c.eq("txnAmount", moneyStr(ch.Amount), "4.00 CNY")
		c.eq("txnCurrency", moneyStr(ch.Amount)[len(moneyStr(ch.Amount))-3:], "CNY")
		c.eq("cardAcceptorLocationName", ch.Merchant, &cardsv1alpha1.Merchant{Name: "Tevau.io"})
		c.eq("expireTimeStamp", ch.ExpiresAt, ms(1751270012990))
		c.eq("createdStamp", ev.OccurredAt, ms(1751269892973))
		c.also(ch.Code, "")
	},
}, {
	file: "reference/authorization.json", source: "https://api-en.tevau.io/327069055e0 (8.5 Transaction / 7.1 Authorisation callback example)",
	event: "Authorization", check: func(c *checker, ev event.Event) {
		tx := c.purchase(ev, "Authorization", "CT2506140813104252", "S2506140813104249", "status=1 subStatus=5 subType=1",
			"20.00 CNY", "Transaction Authorization", ms(1749888799163))
		c.also(tx.Type, cardsv1alpha1.TransactionAuthorization)
		c.also(tx.Phase, cardsv1alpha1.TransactionPending)
		c.eq("details.principal", moneyStr(tx.BillingAmount), "10.00 USD")
		c.fees(tx, "0.30", "0.10", "0.00", "0.40")
		c.channel(tx, "10", "0", "0.2", "0.6")
	},
}, {
	file: "reference/clearing.json", source: "https://api-en.tevau.io/327069056e0 (8.5 Transaction / 7.2 Clearing callback example)",
	event: "Clearing", check: func(c *checker, ev event.Event) {
		tx := c.purchase(ev, "Clearing", "CT2506140802104234", "S2506140804104243", "status=1 subStatus=1 subType=16",
			"10.00 CNY", "Clearing Standard", ms(1749888281726))
		c.also(tx.Type, cardsv1alpha1.TransactionClearing)
		c.also(tx.Phase, cardsv1alpha1.TransactionCompleted)
		c.eq("details.principal", moneyStr(tx.BillingAmount), "5.00 USD")
		c.fees(tx, "0.15", "0.05", "0.00", "0.20")
		c.channel(tx, "5", "0", "0.1", "0.3")
	},
}, {
	file: "reference/refund.json", source: "https://api-en.tevau.io/327069057e0 (8.5 Transaction / 7.3 Refund callback example)",
	event: "Refund", check: func(c *checker, ev event.Event) {
		tx := c.amendment(ev, "CT2506140802104234", "S2506140809104246", "status=2 subStatus=1 subType=9", "Refund Standard",
			ms(1749888597830))
		c.also(tx.Type, cardsv1alpha1.TransactionRefund)
		c.eq("details.refund.refund", moneyStr(tx.Amount), "5.00 USD")
		c.eq("details.refund.refundFee", tx.References["refundFee"], "0.2")
		c.eq("details.refund.channelRefund", tx.References["channelRefund"], "5")
		c.eq("details.refund.channelRefundFee", tx.References["channelRefundFee"], "0.4")
	},
}, {
	file: "reference/reversal.json", source: "https://api-docs.tevau.io/283621452e0 (8.5 Transaction / 7.4 Reversal callback example)",
	event: "Reversal", check: func(c *checker, ev event.Event) {
		tx := c.amendment(ev, "CT2506140649104189", "S2506140656104192", "status=1 subStatus=3 subType=6",
			"Reversal Partially Cancelled", ms(1749884164148))
		c.also(tx.Type, cardsv1alpha1.TransactionReversal)
		c.eq("details.reversal.reversal", moneyStr(tx.Amount), "4.00 USD")
		c.eq("details.reversal.reversalFee", tx.References["reversalFee"], "0.16")
		c.eq("details.reversal.channelReversal", tx.References["channelReversal"], "4")
		c.eq("details.reversal.channelReversalFee", tx.References["channelReversalFee"], "0.32")
	},
}}

func checkCardClose(c *checker, ev event.Event) {
	c.eq("cardId", ev.CardID, "CIDV012566246286")
	c.eq("orderNo", ev.ID, "CA2507250308114804")
	c.eq("orderNo", cardOf(ev).References["CardClose.orderNo"], "CA2507250308114804")
	c.eq("totalAmount", cardOf(ev).Amounts["totalAmount"], cardsv1alpha1.Money{Value: "1.00", Currency: "USD"})
	c.also(cardOf(ev).Phase, cardsv1alpha1.CardClosed)
	c.also(cardOf(ev).ProviderStatus, "CardClose")
	c.also(ev.Transaction, (*event.Transaction)(nil)) // totalAmount is no spend of the card
	c.also(ev.Balance, (*event.Balance)(nil))
}

func TestFidelity(t *testing.T) {
	for _, fc := range fidelityCases {
		t.Run(fc.file, func(t *testing.T) {
			body := sample(t, fc.file)
			res, err := Adapter{}.Decode(signed(t, endpoint(nil), body))
			if err != nil {
				t.Fatalf("%s (from %s): %v", fc.file, fc.source, err)
			}
			if res.Unknown || len(res.Events) != 1 {
				t.Fatalf("unknown=%v events=%d, want one event", res.Unknown, len(res.Events))
			}
			c := &checker{t: t, covered: map[string]bool{}}
			ev := res.Events[0]
			c.eq("eventType", ev.Type, fc.event)
			c.eq("eventType", res.EventType, fc.event)
			fc.check(c, ev)
			c.coverage(fc.event, payloadFields(t, body))
		})
	}
	// The seed's answer example is the adapter's ack, byte for byte once whitespace is ignored.
	var want, got any
	if err := json.Unmarshal(sample(t, "seed/ack.json"), &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ack.Body, &got); err != nil || !reflect.DeepEqual(got, want) || ack.ContentType != "application/json" {
		t.Errorf("ack %s (%s) is not the seed's %v", ack.Body, ack.ContentType, want)
	}
}

// checker asserts event fields by value and records which documented fields were asserted.
type checker struct {
	t       *testing.T
	covered map[string]bool
}

func (c *checker) eq(field string, got, want any) {
	c.t.Helper()
	c.covered[field] = true
	if !reflect.DeepEqual(got, want) {
		c.t.Errorf("%s: got %#v, want %#v", field, got, want)
	}
}

// also asserts a derived fact that belongs to no single field.
func (c *checker) also(got, want any) {
	c.t.Helper()
	if !reflect.DeepEqual(got, want) {
		c.t.Errorf("got %#v, want %#v", got, want)
	}
}

// purchase asserts what every 8.5 transaction callback shares.
func (c *checker) purchase(ev event.Event, name, orderID, sub, status, amount, remark string, at time.Time) *event.Transaction {
	c.t.Helper()
	tx := txOf(ev)
	c.eq("orderId", tx.ID, orderID)
	c.eq("details.subOrderId", ev.ID, sub)
	c.eq("details.subOrderId", tx.References[name+".subOrderId"], sub)
	c.common(ev, tx, status, remark, at)
	c.eq("transAmount", moneyStr(tx.Amount), amount)
	c.eq("transCurrency", moneyStr(tx.Amount)[len(moneyStr(tx.Amount))-3:], amount[len(amount)-3:])
	c.also(tx.Direction, cardsv1alpha1.Debit)
	return tx
}

// amendment asserts what Refund and Reversal share.
func (c *checker) amendment(ev event.Event, orderID, sub, status, remark string, at time.Time) *event.Transaction {
	c.t.Helper()
	tx := txOf(ev)
	c.eq("orderId", tx.OriginalTransactionID, orderID)
	c.eq("details.subOrderId", tx.ID, sub)
	c.eq("details.subOrderId", ev.ID, sub)
	c.common(ev, tx, status, remark, at)
	c.also(tx.Direction, cardsv1alpha1.Credit)
	c.also(tx.Phase, cardsv1alpha1.TransactionCompleted)
	c.also(tx.Fees, []cardsv1alpha1.FeeComponent(nil))
	return tx
}

func (c *checker) common(ev event.Event, tx *event.Transaction, status, remark string, at time.Time) {
	c.t.Helper()
	c.eq("cardId", ev.CardID, "CIDV019485633101")
	c.eq("status", tx.ProviderStatus, status)
	c.eq("details.subStatus", tx.ProviderStatus, status)
	c.eq("details.subType", tx.ProviderStatus, status)
	m := tx.Merchant
	if m == nil {
		m = &cardsv1alpha1.Merchant{}
	}
	c.eq("merchantData.mccCode", m.MCC, "6011")
	c.eq("merchantData.merchantId", m.ID, "12345678")
	c.eq("merchantData.merchantName", m.Name, "Tevau")
	c.eq("merchantData.merchantCountry", m.Country, "HK")
	c.eq("details.remark", tx.Description, remark)
	c.eq("details.createTimeStamp", tx.OccurredAt, at)
	c.eq("details.createTimeStamp", ev.OccurredAt, at)
	c.eq("channel", tx.Channel, "ECOMMERCE")
	c.also(tx.ExchangeRate, cardsv1alpha1.Decimal("")) // Tevau sends no rate
	c.also(ev.Card, (*event.Card)(nil))
}

func (c *checker) fees(tx *event.Transaction, fx, auth, atm, sum string) {
	c.t.Helper()
	if len(tx.Fees) != 3 {
		c.t.Fatalf("fees = %+v, want fxFee, authorizationFee, atmFee", tx.Fees)
	}
	c.eq("details.fxFee", tx.Fees[0], cardsv1alpha1.FeeComponent{Name: "fxFee", Amount: *amt(fx, "USD")})
	c.eq("details.authorizationFee", tx.Fees[1], cardsv1alpha1.FeeComponent{Name: "authorizationFee", Amount: *amt(auth, "USD")})
	c.eq("details.atmFee", tx.Fees[2], cardsv1alpha1.FeeComponent{Name: "atmFee", Amount: *amt(atm, "USD")})
	c.also(moneyStr(tx.Fee), sum+" USD")
}

func (c *checker) channel(tx *event.Transaction, principal, atm, auth, fx string) {
	c.t.Helper()
	c.eq("details.channelPrincipal", tx.References["channelPrincipal"], principal)
	c.eq("details.channelAtmFee", tx.References["channelAtmFee"], atm)
	c.eq("details.channelAuthorizationFee", tx.References["channelAuthorizationFee"], auth)
	c.eq("details.channelFxFee", tx.References["channelFxFee"], fx)
}

// coverage fails for a documented field that is neither asserted nor listed in notStored, for a field of the
// payload that is not documented, and for a notStored field that is asserted after all.
func (c *checker) coverage(eventType string, inPayload []string) {
	c.t.Helper()
	docs, ok := documented[eventType]
	if !ok {
		c.t.Fatalf("no documented fields for %s", eventType)
	}
	known := map[string]bool{}
	for _, f := range docs {
		known[f] = true
		why := notStored[eventType][f]
		switch {
		case c.covered[f] && why != "":
			c.t.Errorf("%s.%s is asserted and also listed as not stored", eventType, f)
		case !c.covered[f] && why == "":
			c.t.Errorf("%s.%s is documented but neither asserted nor listed in notStored", eventType, f)
		case why != "" && !strings.HasPrefix(why, "not stored"):
			c.t.Errorf("%s.%s: reason %q does not start with \"not stored\"", eventType, f, why)
		}
	}
	for _, f := range inPayload {
		if !known[f] {
			c.t.Errorf("%s: payload field %s is missing from documented", eventType, f)
		}
	}
	for f := range notStored[eventType] {
		if !known[f] {
			c.t.Errorf("%s: notStored lists %s, which is not documented", eventType, f)
		}
	}
}

// payloadFields are the leaf field paths of a JSON object (nested as parent.child).
func payloadFields(t *testing.T, body []byte) []string {
	t.Helper()
	m, err := adapter.Object(body)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			out = append(out, prefix+k)
		}
	}
	walk("", m)
	sort.Strings(out)
	return out
}

// TestFidelityDocs checks that docs/providers.md's "#### Tevau fields" section names every documented field
// and every field that is not stored, in backticks.
func TestFidelityDocs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "providers.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "#### Tevau fields")
	if start < 0 {
		t.Fatal(`docs/providers.md has no "#### Tevau fields" section`)
	}
	section := doc[start+len("#### Tevau fields"):]
	if end := strings.Index(section, "\n#"); end >= 0 {
		section = section[:end]
	}
	for ev, fields := range notStored {
		for f := range fields {
			if !strings.Contains(section, "`"+f+"`") {
				t.Errorf("not-stored field %s of %s is not named in the Tevau fields section", f, ev)
			}
		}
	}
	for ev, fields := range documented {
		for _, f := range fields {
			if !strings.Contains(section, "`"+f+"`") {
				t.Errorf("documented field %s of %s is not named in the Tevau fields section", f, ev)
			}
		}
	}
}

func txOf(ev event.Event) *event.Transaction {
	if ev.Transaction == nil {
		return &event.Transaction{}
	}
	return ev.Transaction
}

func cardOf(ev event.Event) *event.Card {
	if ev.Card == nil {
		return &event.Card{}
	}
	return ev.Card
}

func kycOf(ev event.Event) *event.KYC {
	if ev.KYC == nil {
		return &event.KYC{}
	}
	return ev.KYC
}

func moneyStr(m *cardsv1alpha1.Money) string {
	if m == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%s %s", m.Value, m.Currency)
}
