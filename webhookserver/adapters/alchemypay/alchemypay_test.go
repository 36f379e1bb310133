package alchemypay

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/pan"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
)

var _ adapter.Adapter = Adapter{}
var _ adapter.Encoder = Encode

func endpoint(mods ...func(*cardsv1alpha1.Verification)) *endpointconfig.Resolved {
	v := &cardsv1alpha1.Verification{AllowUnauthenticated: true}
	for _, m := range mods {
		m(v)
	}
	return &endpointconfig.Resolved{
		Endpoint: &cardsv1alpha1.WebhookEndpoint{Spec: cardsv1alpha1.WebhookEndpointSpec{
			Provider: cardsv1alpha1.ProviderAlchemyPay, Verification: v}},
		TimestampTolerance: 5 * time.Minute,
	}
}

func decode(t testing.TB, body string) (*adapter.Result, error) {
	t.Helper()
	h, wire, err := Encode(endpoint(), []byte(body), time.Now())
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return Adapter{}.Decode(&adapter.Request{Header: h, Body: wire, Received: time.Now(), Endpoint: endpoint()})
}

func sample(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "alchemypay-order.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// order builds an order callback from the sample, with fields replaced (nil deletes a field).
func order(t testing.TB, set map[string]any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(sample(t)), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func amount(v, cur string) *cardsv1alpha1.Money {
	return &cardsv1alpha1.Money{Value: cardsv1alpha1.Decimal(v), Currency: cur}
}

// orderTime is the sample's "2024-08-09 15:11:09" read in the default zone, +08:00 (it was pinned as 15:11:09 UTC,
// eight hours late: the orderNo embeds the epoch 1723187469, 07:11:09 UTC).
var orderTime = time.Date(2024, 8, 9, 7, 11, 9, 0, time.UTC)

// sampleRate is the sample's currencyExchangeRate; sampleRefs its values kept verbatim in References.
const sampleRate cardsv1alpha1.Decimal = "1.092759"

var sampleRefs = map[string]string{"cryptoCurrencyExchangeRate": "1", "orderAmount": "61.91", "applyFee": "0",
	"rechargeFee": "0.72122094", "deliveryFee": "0", "rechargeMarkup": "0.99"}

// refs is sampleRefs with changes ("" deletes a key).
func refs(changes map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range sampleRefs {
		out[k] = v
	}
	for k, v := range changes {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

const (
	samplePAN = "5554748800912345" // the documented example; not Luhn-valid
	visaPAN   = "4111111111111111"
	cardID    = "1232330814012345678"
	orderNo   = "100217231874691123456"
)

var usdtPayment = &cardsv1alpha1.CryptoPayment{Asset: "USDT", Amount: "61.91", Network: "TRX", Fee: "1.71122094"}

type tcase struct {
	name  string
	set   map[string]any // changes to the sample; nil map: the sample as is
	etype string
	want  event.Event
}

var cases = []tcase{
	{name: "sample: recharge of a physical card succeeded", etype: TypeRechargeOrder,
		want: event.Event{Type: TypeRechargeOrder, ID: orderNo + ":SUCCESS", OccurredAt: orderTime.Add(time.Microsecond), CardID: cardID,
			Card: &event.Card{Type: cardsv1alpha1.CardPhysical, Number: &cardsv1alpha1.MaskedNumber{BIN: "555474", Last4: "2345"}},
			Transaction: &event.Transaction{ID: orderNo, Type: cardsv1alpha1.TransactionCryptoOrder, Phase: cardsv1alpha1.TransactionCompleted,
				ProviderStatus: "SUCCESS", Direction: cardsv1alpha1.Credit, Amount: amount("55.00", "EUR"), Crypto: usdtPayment, OccurredAt: orderTime,
				ExchangeRate: sampleRate, References: refs(nil)}}},
	{name: "create virtual card succeeded", etype: TypeCreateCardOrder,
		set: map[string]any{"orderType": "1", "cardType": "1", "cardNumber": visaPAN, "cardAmount": "100", "cardCurrency": "USD",
			"applyFee": "5", "deliveryFee": "", "paymentAmount": "107.2", "cryptoCurrency": "usdt", "shippingInfo": map[string]any{"address": "1 Main St", "phone": "+1555"}},
		want: event.Event{Type: TypeCreateCardOrder, ID: orderNo + ":SUCCESS", OccurredAt: orderTime.Add(time.Microsecond), CardID: cardID,
			Card: &event.Card{Phase: cardsv1alpha1.CardActive, ProviderStatus: "SUCCESS", Type: cardsv1alpha1.CardVirtual,
				Number: &cardsv1alpha1.MaskedNumber{BIN: "411111", Last4: "1111"}},
			Transaction: &event.Transaction{ID: orderNo, Type: cardsv1alpha1.TransactionCryptoOrder, Phase: cardsv1alpha1.TransactionCompleted,
				ProviderStatus: "SUCCESS", Direction: cardsv1alpha1.Credit, Amount: amount("100.00", "USD"),
				Crypto: &cardsv1alpha1.CryptoPayment{Asset: "USDT", Amount: "107.2", Network: "TRX", Fee: "6.71122094"}, OccurredAt: orderTime,
				ExchangeRate: sampleRate, References: refs(map[string]string{"applyFee": "5", "deliveryFee": ""})}}},
	// Paid, not yet made, shipped or activated (this case pinned Active before).
	{name: "create physical card succeeded: Requested", etype: TypeCreateCardOrder,
		set: map[string]any{"orderType": "1", "deliveryFee": "20"},
		want: event.Event{Type: TypeCreateCardOrder, ID: orderNo + ":SUCCESS", OccurredAt: orderTime.Add(time.Microsecond), CardID: cardID,
			Card: &event.Card{Phase: cardsv1alpha1.CardRequested, ProviderStatus: "SUCCESS", Type: cardsv1alpha1.CardPhysical,
				Number: &cardsv1alpha1.MaskedNumber{BIN: "555474", Last4: "2345"}},
			Transaction: &event.Transaction{ID: orderNo, Type: cardsv1alpha1.TransactionCryptoOrder, Phase: cardsv1alpha1.TransactionCompleted,
				ProviderStatus: "SUCCESS", Direction: cardsv1alpha1.Credit, Amount: amount("55.00", "EUR"),
				Crypto: &cardsv1alpha1.CryptoPayment{Asset: "USDT", Amount: "61.91", Network: "TRX", Fee: "21.71122094"}, OccurredAt: orderTime,
				ExchangeRate: sampleRate, References: refs(map[string]string{"deliveryFee": "20"})}}},
	{name: "recharge pending (INIT)", etype: TypeRechargeOrder,
		set: map[string]any{"status": "INIT", "paymentAmount": ""},
		want: event.Event{Type: TypeRechargeOrder, ID: orderNo + ":INIT", OccurredAt: orderTime, CardID: cardID,
			Card: &event.Card{Type: cardsv1alpha1.CardPhysical, Number: &cardsv1alpha1.MaskedNumber{BIN: "555474", Last4: "2345"}},
			Transaction: &event.Transaction{ID: orderNo, Type: cardsv1alpha1.TransactionCryptoOrder, Phase: cardsv1alpha1.TransactionPending,
				ProviderStatus: "INIT", Direction: cardsv1alpha1.Credit, Amount: amount("55.00", "EUR"),
				Crypto: &cardsv1alpha1.CryptoPayment{Asset: "USDT", Network: "TRX", Fee: "1.71122094"}, OccurredAt: orderTime,
				ExchangeRate: sampleRate, References: refs(nil)}}},
	{name: "recharge failed with reason", etype: TypeRechargeOrder,
		set: map[string]any{"status": "FAIL", "failReason": "card frozen"},
		want: event.Event{Type: TypeRechargeOrder, ID: orderNo + ":FAIL", OccurredAt: orderTime.Add(time.Microsecond), CardID: cardID,
			Card: &event.Card{Type: cardsv1alpha1.CardPhysical, Number: &cardsv1alpha1.MaskedNumber{BIN: "555474", Last4: "2345"}},
			Transaction: &event.Transaction{ID: orderNo, Type: cardsv1alpha1.TransactionCryptoOrder, Phase: cardsv1alpha1.TransactionFailed,
				ProviderStatus: "FAIL", Direction: cardsv1alpha1.Credit, Amount: amount("55.00", "EUR"), FailureReason: "card frozen",
				Crypto: usdtPayment, OccurredAt: orderTime,
				ExchangeRate: sampleRate, References: refs(nil)}}},
	{name: "recharge canceled (not paid), no card number", etype: TypeRechargeOrder,
		set: map[string]any{"status": "CANCEL", "cardNumber": "", "cardType": ""},
		want: event.Event{Type: TypeRechargeOrder, ID: orderNo + ":CANCEL", OccurredAt: orderTime.Add(time.Microsecond), CardID: cardID,
			Transaction: &event.Transaction{ID: orderNo, Type: cardsv1alpha1.TransactionCryptoOrder, Phase: cardsv1alpha1.TransactionCanceled,
				ProviderStatus: "CANCEL", Direction: cardsv1alpha1.Credit, Amount: amount("55.00", "EUR"), Crypto: usdtPayment, OccurredAt: orderTime,
				ExchangeRate: sampleRate, References: refs(nil)}}},
	{name: "recharge refunding", etype: TypeRechargeOrder,
		set: map[string]any{"status": "REFUNDING"},
		want: event.Event{Type: TypeRechargeOrder, ID: orderNo + ":REFUNDING", OccurredAt: orderTime.Add(2 * time.Microsecond), CardID: cardID,
			Card: &event.Card{Type: cardsv1alpha1.CardPhysical, Number: &cardsv1alpha1.MaskedNumber{BIN: "555474", Last4: "2345"}},
			Transaction: &event.Transaction{ID: orderNo, Type: cardsv1alpha1.TransactionCryptoOrder, Phase: cardsv1alpha1.TransactionRefunded,
				ProviderStatus: "REFUNDING", Direction: cardsv1alpha1.Credit, Amount: amount("55.00", "EUR"), Crypto: usdtPayment, OccurredAt: orderTime,
				ExchangeRate: sampleRate, References: refs(nil)}}},
	{name: "create card failed before a card existed: kept on the order's card", etype: TypeCreateCardOrder,
		set: map[string]any{"orderType": "1", "status": "FAIL", "cardId": "", "cardNumber": "", "failReason": "KYC rejected"},
		want: event.Event{Type: TypeCreateCardOrder, ID: orderNo + ":FAIL", OccurredAt: orderTime.Add(time.Microsecond), CardID: "order-" + orderNo,
			Card: &event.Card{Phase: cardsv1alpha1.CardFailed, ProviderStatus: "FAIL", Reason: "KYC rejected", Type: cardsv1alpha1.CardPhysical},
			Transaction: &event.Transaction{ID: orderNo, Type: cardsv1alpha1.TransactionCryptoOrder, Phase: cardsv1alpha1.TransactionFailed,
				ProviderStatus: "FAIL", Direction: cardsv1alpha1.Credit, Amount: amount("55.00", "EUR"), FailureReason: "KYC rejected",
				Crypto: usdtPayment, OccurredAt: orderTime,
				ExchangeRate: sampleRate, References: refs(nil)}}},
	{name: "create card awaiting payment without a card", etype: TypeCreateCardOrder,
		set: map[string]any{"orderType": "1", "status": "INIT", "cardId": nil, "cardNumber": nil, "cardType": "1"},
		want: event.Event{Type: TypeCreateCardOrder, ID: orderNo + ":INIT", OccurredAt: orderTime, CardID: "order-" + orderNo,
			Card: &event.Card{Phase: cardsv1alpha1.CardRequested, ProviderStatus: "INIT", Type: cardsv1alpha1.CardVirtual},
			Transaction: &event.Transaction{ID: orderNo, Type: cardsv1alpha1.TransactionCryptoOrder, Phase: cardsv1alpha1.TransactionPending,
				ProviderStatus: "INIT", Direction: cardsv1alpha1.Credit, Amount: amount("55.00", "EUR"), Crypto: usdtPayment, OccurredAt: orderTime,
				ExchangeRate: sampleRate, References: refs(nil)}}},
	{name: "create card canceled with a card ID: no phase for the card", etype: TypeCreateCardOrder,
		set: map[string]any{"orderType": "1", "status": "CANCEL"},
		want: event.Event{Type: TypeCreateCardOrder, ID: orderNo + ":CANCEL", OccurredAt: orderTime.Add(time.Microsecond), CardID: cardID,
			Card: &event.Card{Type: cardsv1alpha1.CardPhysical, Number: &cardsv1alpha1.MaskedNumber{BIN: "555474", Last4: "2345"}},
			Transaction: &event.Transaction{ID: orderNo, Type: cardsv1alpha1.TransactionCryptoOrder, Phase: cardsv1alpha1.TransactionCanceled,
				ProviderStatus: "CANCEL", Direction: cardsv1alpha1.Credit, Amount: amount("55.00", "EUR"), Crypto: usdtPayment, OccurredAt: orderTime,
				ExchangeRate: sampleRate, References: refs(nil)}}},
	{name: "paid in BTC: the USDT valuations are not BTC amounts", etype: TypeRechargeOrder,
		set: map[string]any{"cryptoCurrency": "BTC", "network": "BTC", "cryptoCurrencyExchangeRate": "61000"},
		want: event.Event{Type: TypeRechargeOrder, ID: orderNo + ":SUCCESS", OccurredAt: orderTime.Add(time.Microsecond), CardID: cardID,
			Card: &event.Card{Type: cardsv1alpha1.CardPhysical, Number: &cardsv1alpha1.MaskedNumber{BIN: "555474", Last4: "2345"}},
			Transaction: &event.Transaction{ID: orderNo, Type: cardsv1alpha1.TransactionCryptoOrder, Phase: cardsv1alpha1.TransactionCompleted,
				ProviderStatus: "SUCCESS", Direction: cardsv1alpha1.Credit, Amount: amount("55.00", "EUR"),
				Crypto: &cardsv1alpha1.CryptoPayment{Asset: "BTC", Network: "BTC"}, OccurredAt: orderTime,
				ExchangeRate: sampleRate, References: refs(map[string]string{"cryptoCurrencyExchangeRate": "61000", "paymentAmount": "61.91"})}}},
	{name: "failed order without amounts or time", etype: TypeRechargeOrder,
		set: map[string]any{"status": "fail", "cardAmount": "", "cardCurrency": "", "paymentAmount": "", "cryptoCurrency": "", "orderTime": "",
			"applyFee": "", "rechargeFee": "", "deliveryFee": "", "rechargeMarkup": ""},
		want: event.Event{Type: TypeRechargeOrder, ID: orderNo + ":FAIL", CardID: cardID,
			Card: &event.Card{Type: cardsv1alpha1.CardPhysical, Number: &cardsv1alpha1.MaskedNumber{BIN: "555474", Last4: "2345"}},
			Transaction: &event.Transaction{ID: orderNo, Type: cardsv1alpha1.TransactionCryptoOrder, Phase: cardsv1alpha1.TransactionFailed,
				ProviderStatus: "fail", Direction: cardsv1alpha1.Credit, ExchangeRate: sampleRate,
				References: refs(map[string]string{"applyFee": "", "rechargeFee": "", "deliveryFee": "", "rechargeMarkup": ""})}}},
}

func body(t testing.TB, c tcase) string {
	if c.set == nil {
		return sample(t)
	}
	return order(t, c.set)
}

func asJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecode(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := decode(t, body(t, c))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if res.Unknown || res.EventType != c.etype {
				t.Errorf("EventType = %q (unknown %v), want %q", res.EventType, res.Unknown, c.etype)
			}
			if res.Ack.Status != http.StatusOK || string(res.Ack.Body) != "success" {
				t.Errorf("Ack = %+v", res.Ack)
			}
			if res.DeliveryID != "" || res.Authorize != nil {
				t.Errorf("DeliveryID %q / Authorize set: Alchemy Pay sends neither a nonce nor authorization requests", res.DeliveryID)
			}
			if got, want := asJSON(t, res.Events), asJSON(t, []event.Event{c.want}); got != want {
				t.Errorf("events:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// Every push of an order carries the same orderTime: the lifecycle rank orders them.
func TestStatusOrdering(t *testing.T) {
	at := map[string]time.Time{}
	for _, st := range []string{"INIT", "SUCCESS", "FAIL", "CANCEL", "REFUNDING", "PROCESSING"} {
		res, err := decode(t, order(t, map[string]any{"status": st}))
		if err != nil {
			t.Fatal(err)
		}
		at[st] = res.Events[0].OccurredAt
		if !res.Events[0].Transaction.OccurredAt.Equal(orderTime) {
			t.Errorf("%s: transaction time %s, want the order time", st, res.Events[0].Transaction.OccurredAt)
		}
	}
	for _, final := range []string{"SUCCESS", "FAIL", "CANCEL"} {
		if !at["INIT"].Before(at[final]) || !at[final].Before(at["REFUNDING"]) {
			t.Errorf("INIT %s, %s %s, REFUNDING %s are not in lifecycle order", at["INIT"], final, at[final], at["REFUNDING"])
		}
		// An unknown status never displaces a known final one.
		if !at["PROCESSING"].Before(at[final]) {
			t.Errorf("unknown status at %s is not before %s at %s", at["PROCESSING"], final, at[final])
		}
	}
}

func TestUnknownOrderType(t *testing.T) {
	res, err := decode(t, order(t, map[string]any{"orderType": "3"}))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Unknown || len(res.Events) != 0 || res.Ack.Status != 200 || res.EventType != "ORDER_TYPE_3" {
		t.Errorf("unknown order type: %+v", res)
	}
}

func TestMalformed(t *testing.T) {
	for _, c := range []struct {
		name string
		body string
		want string
	}{
		{"not JSON", "orderNo=1", "not valid JSON"},
		{"array", `[]`, "not valid JSON"},
		{"no orderNo", order(t, map[string]any{"orderNo": nil}), "no orderNo"},
		{"no orderType", order(t, map[string]any{"orderType": ""}), "order " + orderNo + " has no orderType"},
		{"no status", order(t, map[string]any{"status": nil}), `RECHARGE_ORDER: order ` + orderNo + ` has no status`},
		{"bad orderTime", order(t, map[string]any{"orderTime": "09/08/2024"}), "RECHARGE_ORDER: orderTime"},
		{"bad cardAmount", order(t, map[string]any{"cardAmount": "55 EUR"}), "RECHARGE_ORDER: cardAmount/cardCurrency"},
		{"no cardCurrency", order(t, map[string]any{"cardCurrency": ""}), "RECHARGE_ORDER: cardAmount/cardCurrency"},
		{"bad paymentAmount", order(t, map[string]any{"paymentAmount": "lots"}), "RECHARGE_ORDER: paymentAmount"},
		{"bad fee", order(t, map[string]any{"rechargeFee": "1e2"}), "RECHARGE_ORDER: rechargeFee"},
		{"bad markup", order(t, map[string]any{"rechargeMarkup": "0,99"}), "RECHARGE_ORDER: rechargeMarkup"},
		{"bad rate", order(t, map[string]any{"currencyExchangeRate": "1.09x"}), "RECHARGE_ORDER: currencyExchangeRate"},
		{"bad crypto rate", order(t, map[string]any{"cryptoCurrencyExchangeRate": "one"}), "RECHARGE_ORDER: cryptoCurrencyExchangeRate"},
		{"bad asset", order(t, map[string]any{"cryptoCurrency": "US DT"}), "RECHARGE_ORDER: cryptoCurrency"},
		{"recharge without card", order(t, map[string]any{"cardId": ""}), "RECHARGE_ORDER: order " + orderNo + " (status SUCCESS) has no cardId"},
		{"created card without ID", order(t, map[string]any{"orderType": "1", "cardId": nil}), "CREATE_CARD_ORDER: order " + orderNo + " (status SUCCESS) has no cardId"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := decode(t, c.body)
			r, ok := adapter.AsRejection(err)
			if !ok {
				t.Fatalf("Decode = %+v, %v; want a Malformed rejection", res, err)
			}
			if r.Reason != cardsv1alpha1.ReasonMalformed || r.Status != http.StatusBadRequest || !strings.Contains(r.Message, c.want) {
				t.Errorf("rejection = %d %s %q, want Malformed containing %q", r.Status, r.Reason, r.Message, c.want)
			}
		})
	}
}

// Alchemy Pay signs nothing: authenticity is the receiver's job. Decode ignores headers and verification
// options and needs no endpoint.
func TestNoSignatureToVerify(t *testing.T) {
	body := sample(t)
	want := ""
	for i, req := range []*adapter.Request{
		{Body: []byte(body)},
		{Header: http.Header{"Signature": {"forged"}}, Body: []byte(body), Endpoint: endpoint()},
		{Header: http.Header{}, Body: []byte(body), Endpoint: endpoint(func(v *cardsv1alpha1.Verification) {
			v.AllowUnauthenticated, v.SourceCIDRs = false, []string{"203.0.113.0/24"}
		})},
		{Header: http.Header{}, Body: []byte(body), Received: time.Unix(0, 0), Endpoint: endpoint(func(v *cardsv1alpha1.Verification) {
			v.AllowUnauthenticated, v.RequireURLToken = false, true
		})},
	} {
		res, err := Adapter{}.Decode(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got := asJSON(t, []any{res.EventType, res.Unknown, res.Ack, res.Events})
		if want == "" {
			want = got
		} else if got != want {
			t.Errorf("request %d decoded differently:\n%s\nvs\n%s", i, got, want)
		}
	}
	if _, err := (Adapter{}).Decode(nil); err == nil {
		t.Error("nil request accepted")
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, c := range cases {
		payload := body(t, c)
		h, wire, err := Encode(endpoint(), []byte(payload), time.Now())
		if err != nil {
			t.Fatalf("%s: Encode: %v", c.name, err)
		}
		if h.Get("Content-Type") != "application/json" || string(wire) != payload {
			t.Errorf("%s: Encode changed the request: %v %q", c.name, h, wire)
		}
		res, err := Adapter{}.Decode(&adapter.Request{Header: h, Body: wire, Received: time.Now(), Endpoint: endpoint()})
		if err != nil || res.EventType != c.etype || len(res.Events) != 1 {
			t.Errorf("%s: round trip: %+v, %v", c.name, res, err)
		}
	}
}

func dump(ev event.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%+v", ev)
	for _, p := range []any{ev.Card, ev.Balance, ev.Transaction, ev.Authorization, ev.Challenge, ev.KYC, ev.Logistics} {
		fmt.Fprintf(&b, " %+v", p)
	}
	if ev.Card != nil {
		fmt.Fprintf(&b, " %+v %+v", ev.Card.Number, ev.Card.Expiry)
	}
	if t := ev.Transaction; t != nil {
		fmt.Fprintf(&b, " %+v %+v %+v %+v %+v", t.Amount, t.BillingAmount, t.Fee, t.Merchant, t.Crypto)
	}
	return b.String()
}

// The card number, email, wallet address, voucher and shipping details never reach an event.
func TestNoSecretsInEvents(t *testing.T) {
	secret := map[string]any{"cardNumber": visaPAN, "email": "email-secret@example.com", "cryptoAddress": "TAddrSecret0123456789",
		"voucherCode": "VOUCHER-SECRET", "shippingInfo": map[string]any{"name": "name-secret", "address": "address-secret", "phone": "phone-secret"}}
	bodies := []string{order(t, secret), order(t, map[string]any{"cardNumber": "4111 1111 1111 1111", "orderType": "1"})}
	for _, c := range cases {
		bodies = append(bodies, body(t, c))
	}
	for _, b := range bodies {
		res, err := decode(t, b)
		if err != nil {
			t.Fatalf("Decode(%s): %v", b, err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(b), &m); err != nil {
			t.Fatal(err)
		}
		var secrets []string
		for _, k := range []string{"cardNumber", "email", "cryptoAddress", "voucherCode"} {
			if s, _ := m[k].(string); len(s) >= 5 {
				secrets = append(secrets, s, strings.ReplaceAll(s, " ", ""))
			}
		}
		if s, ok := m["shippingInfo"].(map[string]any); ok {
			for _, v := range s {
				secrets = append(secrets, fmt.Sprint(v))
			}
		}
		pans := pan.Find(fmt.Sprint(m["cardNumber"]))
		for _, ev := range res.Events {
			out := dump(ev) + asJSON(t, ev)
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("event leaks %q: %s", s, out)
				}
			}
			for _, found := range pan.Find(out) {
				for _, p := range pans {
					if found == p {
						t.Errorf("event contains the full card number %s", p)
					}
				}
			}
		}
	}
}

var (
	binPattern   = regexp.MustCompile(`^[0-9]{6}([0-9]{2})?$`)
	last4Pattern = regexp.MustCompile(`^[0-9]{4}$`)
)

func FuzzDecode(f *testing.F) {
	f.Add([]byte(sample(f)))
	for _, c := range cases {
		f.Add([]byte(body(f, c)))
	}
	f.Add([]byte(`{"orderNo":"1","orderType":"9"}`))
	f.Add([]byte(`{"orderNo":1,"orderType":1,"status":"FAIL","cardAmount":1,"cardCurrency":"USD"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := Adapter{}.Decode(&adapter.Request{Header: http.Header{}, Body: body, Received: time.Now(), Endpoint: endpoint()})
		if err != nil {
			if _, ok := adapter.AsRejection(err); !ok {
				t.Fatalf("error is not a *adapter.Rejection: %T %v", err, err)
			}
			return
		}
		if res == nil || res.Ack.Status != http.StatusOK {
			t.Fatalf("no error but result %+v", res)
		}
		for _, ev := range res.Events {
			if ev.CardID == "" || ev.Transaction == nil || ev.Transaction.ID == "" {
				t.Fatalf("order event without card or transaction: %+v", ev)
			}
			if c := ev.Card; c != nil && c.Number != nil {
				if c.Number.BIN != "" && !binPattern.MatchString(c.Number.BIN) || c.Number.Last4 != "" && !last4Pattern.MatchString(c.Number.Last4) {
					t.Fatalf("bad masked number %+v", c.Number)
				}
			}
			if a := ev.Transaction.Amount; a != nil && strings.HasPrefix(string(a.Value), "-") {
				t.Fatalf("signed amount %+v", a)
			}
		}
	})
}
