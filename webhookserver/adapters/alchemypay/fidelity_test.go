package alchemypay

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// seedFile is the provider documentation the examples and field tables below come from.
const seedFile = "/work/shared/providers/seeds/004_b60e530aea0429de.txt"

// orderFields are the fields of the seed's one table, "Explanation of Return Parameters" (lines 9-33), which
// describes every order callback, create-card and recharge alike. Line 12 prints no name ("string | User's
// email"); the example (line 47) names it email.
var orderFields = []string{"orderNo", "email", "cardNumber", "cardId", "cryptoAddress", "network", "orderType", "cardType",
	"orderAmount", "paymentAmount", "cryptoCurrency", "applyFee", "rechargeFee", "voucherCode", "rechargeMarkup",
	"deliveryFee", "cardAmount", "cardCurrency", "currencyExchangeRate", "cryptoCurrencyExchangeRate", "orderTime",
	"failReason", "status"}

// documented are the documented fields per event type.
var documented = map[string][]string{TypeCreateCardOrder: orderFields, TypeRechargeOrder: orderFields}

// notStored are documented fields no event keeps, and why. The docs fragment must name each of them.
var notStored = map[string]string{
	"email":         "not stored, because it is personal data; it is also the only user identifier sent, so no holder ID is set",
	"cryptoAddress": "not stored, because the payer's wallet address is personal data",
	"voucherCode":   "not stored, because a voucher code is redeemable, a bearer credential",
}

type check func(t *testing.T, ev event.Event)

// seedCase is one example payload of the seed, copied verbatim to testdata/seed/.
type seedCase struct {
	file   string // under testdata/seed
	lines  [2]int // first and last line of the seed it was copied from
	fixes  string // what had to be changed to make it valid JSON ("" for none)
	etype  string
	stored map[string]check // documented field -> assertion of where it lands, by value
}

var seedCases = []seedCase{{
	file: "recharge-order-success.json", lines: [2]int{35, 59}, etype: TypeRechargeOrder, // seed "Return Example"
	fixes: "", // valid JSON as printed ("[email protected]" is the page's own mangled email, kept verbatim)
	stored: map[string]check{
		"orderNo": func(t *testing.T, ev event.Event) {
			want(t, "orderNo", ev.Transaction.ID == "100217231874691123456" && ev.ID == "100217231874691123456:SUCCESS", ev.Transaction.ID, ev.ID)
		},
		"cardNumber": func(t *testing.T, ev event.Event) {
			n := ev.Card.Number
			want(t, "cardNumber", n != nil && *n == cardsv1alpha1.MaskedNumber{BIN: "555474", Last4: "2345"}, n)
		},
		"cardId": func(t *testing.T, ev event.Event) { want(t, "cardId", ev.CardID == "1232330814012345678", ev.CardID) },
		"network": func(t *testing.T, ev event.Event) {
			want(t, "network", ev.Transaction.Crypto.Network == "TRX", ev.Transaction.Crypto)
		},
		"orderType": func(t *testing.T, ev event.Event) {
			want(t, "orderType", ev.Type == TypeRechargeOrder && ev.Transaction.Type == cardsv1alpha1.TransactionCryptoOrder, ev.Type)
		},
		"cardType": func(t *testing.T, ev event.Event) {
			// A recharge says nothing about the card's phase.
			want(t, "cardType", ev.Card.Type == cardsv1alpha1.CardPhysical && ev.Card.Phase == "", ev.Card.Type, ev.Card.Phase)
		},
		"orderAmount": reference("orderAmount", "61.91"),
		"paymentAmount": func(t *testing.T, ev event.Event) {
			want(t, "paymentAmount", ev.Transaction.Crypto.Amount == "61.91", ev.Transaction.Crypto)
		},
		"cryptoCurrency": func(t *testing.T, ev event.Event) {
			want(t, "cryptoCurrency", ev.Transaction.Crypto.Asset == "USDT", ev.Transaction.Crypto)
		},
		"applyFee":    reference("applyFee", "0"),
		"rechargeFee": reference("rechargeFee", "0.72122094"),
		"deliveryFee": reference("deliveryFee", "0"),
		"rechargeMarkup": func(t *testing.T, ev event.Event) {
			reference("rechargeMarkup", "0.99")(t, ev)
			// The four together are what the payer paid besides the card amount, as CryptoPayment.fee defines it;
			// the markup is no card fee, so Fee and Fees stay empty (they also cannot hold USDT).
			tx := ev.Transaction
			want(t, "fees", tx.Crypto.Fee == "1.71122094" && tx.Fee == nil && tx.Fees == nil, tx.Crypto, tx.Fee, tx.Fees)
		},
		"cardAmount": func(t *testing.T, ev event.Event) {
			want(t, "cardAmount", ev.Transaction.Amount.Value == "55.00", ev.Transaction.Amount)
		},
		"cardCurrency": func(t *testing.T, ev event.Event) {
			want(t, "cardCurrency", ev.Transaction.Amount.Currency == "EUR", ev.Transaction.Amount)
		},
		"currencyExchangeRate": func(t *testing.T, ev event.Event) {
			want(t, "currencyExchangeRate", ev.Transaction.ExchangeRate == "1.092759", ev.Transaction.ExchangeRate)
		},
		"cryptoCurrencyExchangeRate": reference("cryptoCurrencyExchangeRate", "1"),
		"orderTime": func(t *testing.T, ev event.Event) {
			at := time.Date(2024, 8, 9, 7, 11, 9, 0, time.UTC) // 15:11:09 at +08:00, the epoch in orderNo
			want(t, "orderTime", ev.Transaction.OccurredAt.Equal(at) && ev.OccurredAt.Equal(at.Add(time.Microsecond)), ev.Transaction.OccurredAt, ev.OccurredAt)
		},
		"failReason": func(t *testing.T, ev event.Event) {
			want(t, "failReason", ev.Transaction.FailureReason == "", ev.Transaction.FailureReason)
		},
		"status": func(t *testing.T, ev event.Event) {
			tx := ev.Transaction
			want(t, "status", tx.Phase == cardsv1alpha1.TransactionCompleted && tx.ProviderStatus == "SUCCESS", tx.Phase, tx.ProviderStatus)
		},
	},
}}

func want(t *testing.T, field string, ok bool, got ...any) {
	t.Helper()
	if !ok {
		t.Errorf("%s landed wrong: %+v", field, got)
	}
}

func reference(key, value string) check {
	return func(t *testing.T, ev event.Event) {
		t.Helper()
		want(t, key, ev.Transaction.References[key] == value, ev.Transaction.References)
	}
}

func TestSeedFidelity(t *testing.T) {
	for _, c := range seedCases {
		t.Run(c.file, func(t *testing.T) {
			payload, err := os.ReadFile(filepath.Join("testdata", "seed", c.file))
			if err != nil {
				t.Fatal(err)
			}
			// The real callback: what Encode sends (plain JSON, unsigned) from a default endpoint.
			h, wire, err := Encode(endpoint(), payload, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			res, err := Adapter{}.Decode(&adapter.Request{Header: h, Body: wire, Received: time.Now(), Endpoint: endpoint()})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if res.EventType != c.etype || res.Unknown || len(res.Events) != 1 {
				t.Fatalf("want one %s event, got %+v", c.etype, res)
			}
			ev := res.Events[0]
			if ev.Card == nil || ev.Transaction == nil || ev.Transaction.Crypto == nil || ev.Transaction.Amount == nil {
				t.Fatalf("event lacks its card, transaction, crypto or amount: %+v", ev)
			}
			var sent map[string]any
			if err := json.Unmarshal(payload, &sent); err != nil {
				t.Fatal(err)
			}
			coverage(t, c, sent)
			for _, field := range sortedKeys(c.stored) {
				c.stored[field](t, ev)
			}
			out, _ := json.Marshal(ev)
			for _, secret := range []string{"5554748800912345", "[email protected]"} {
				if strings.Contains(string(out), secret) {
					t.Errorf("event keeps %q: %s", secret, out)
				}
			}
		})
	}
}

// coverage fails when a documented field is neither asserted nor listed as not stored, when a field is both,
// when a listed field is not documented, or when the example sends an undocumented field.
func coverage(t *testing.T, c seedCase, sent map[string]any) {
	t.Helper()
	doc := map[string]bool{}
	for _, f := range documented[c.etype] {
		doc[f] = true
		_, s := c.stored[f]
		_, n := notStored[f]
		switch {
		case !s && !n:
			t.Errorf("%s: documented field %s is neither asserted nor listed in notStored", c.etype, f)
		case s && n:
			t.Errorf("%s: field %s is both asserted and listed in notStored", c.etype, f)
		}
	}
	for f := range c.stored {
		if !doc[f] {
			t.Errorf("%s: asserted field %s is not documented", c.etype, f)
		}
	}
	for f := range notStored {
		if !doc[f] {
			t.Errorf("notStored field %s is not documented", f)
		}
	}
	for f := range sent {
		if !doc[f] {
			t.Errorf("%s (seed lines %v) sends %s, which the field table does not document", c.file, c.lines, f)
		}
	}
}

// The seed example under testdata/seed is the seed's text, byte for byte (when the seed is on this machine).
func TestSeedCopiesVerbatim(t *testing.T) {
	seed, err := os.ReadFile(seedFile)
	if err != nil {
		t.Skipf("seed not available: %v", err)
	}
	lines := strings.Split(string(seed), "\n")
	for _, c := range seedCases {
		copied, err := os.ReadFile(filepath.Join("testdata", "seed", c.file))
		if err != nil {
			t.Fatal(err)
		}
		if w := strings.Join(lines[c.lines[0]-1:c.lines[1]], "\n") + "\n"; c.fixes == "" && string(copied) != w {
			t.Errorf("%s differs from seed lines %v", c.file, c.lines)
		}
	}
}

// The providers documentation names every documented field, and every field not stored, in its field table.
func TestFieldsDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "providers.md"))
	if err != nil {
		t.Fatal(err)
	}
	const heading = "#### Alchemy Pay fields"
	doc := string(b)
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("docs/providers.md has no %q section", heading)
	}
	section := doc[i+len(heading)+2:]
	if end := regexp.MustCompile(`(?m)^#{1,4} `).FindStringIndex(section); end != nil {
		section = section[:end[0]]
	}
	for _, f := range sortedKeys(notStored) {
		if !strings.Contains(section, "`"+f+"`") {
			t.Errorf("%s does not name the unstored field `%s`", heading, f)
		}
	}
	for _, f := range orderFields {
		if !strings.Contains(section, "`"+f+"`") {
			t.Errorf("%s does not name the documented field `%s`", heading, f)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
