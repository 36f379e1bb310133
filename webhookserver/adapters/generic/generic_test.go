package generic

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/pan"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/adapters/generic/mapping"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// The secret of config/samples/cards_v1alpha1_webhookendpoint_generic.yaml.
const sampleSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"

// sampleMapping is the mapping of config/samples/cards_v1alpha1_webhookendpoint_generic.yaml.
func sampleMapping() *cardsv1alpha1.GenericMapping {
	return &cardsv1alpha1.GenericMapping{
		Signature:  "StandardWebhooks",
		EventType:  "body.type",
		EventID:    "body.id",
		OccurredAt: "body.created",
		Events: []cardsv1alpha1.GenericEventRule{
			{
				EventTypes: []string{"card.created", "card.updated"},
				Kind:       "CardLifecycle",
				Fields: map[string]string{
					"cardID":         "body.data.id",
					"phase":          "{'active': 'Active', 'inactive': 'Frozen', 'canceled': 'Closed'}[body.data.status]",
					"providerStatus": "body.data.status",
					"last4":          "body.data.last4",
					"expiryMonth":    "body.data.exp_month",
					"expiryYear":     "body.data.exp_year",
				},
			},
			{
				EventTypes: []string{"transaction.created", "transaction.updated"},
				Kind:       "Transaction",
				Fields: map[string]string{
					"cardID":           "body.data.card",
					"transactionID":    "body.data.id",
					"transactionType":  "body.data.type == 'refund' ? 'Refund' : 'Purchase'",
					"transactionPhase": "'Completed'",
					"amountMinor":      "body.data.amount < 0 ? -body.data.amount : body.data.amount",
					"currency":         "body.data.currency.upperAscii()",
					"merchantName":     "body.data.merchant_data.name",
					"mcc":              "body.data.merchant_data.category_code",
				},
			},
		},
	}
}

// acmeMapping exercises every kind and field, headers, optionals and every time format.
func acmeMapping() *cardsv1alpha1.GenericMapping {
	return &cardsv1alpha1.GenericMapping{
		EventType:  "'x-acme-event' in headers ? headers['x-acme-event'] : body.type",
		OccurredAt: "body.occurred_at",
		Events: []cardsv1alpha1.GenericEventRule{
			{EventTypes: []string{"card.status"}, Kind: "CardLifecycle", Fields: map[string]string{
				"cardID":         "body.data.card_id",
				"holderID":       "body.data.holder_id",
				"phase":          "{'ACTIVE': 'Active', 'FROZEN': 'Frozen', 'CLOSED': 'Closed'}[body.data.state]",
				"providerStatus": "body.data.state",
				"reason":         "body.data.?reason",
				"cardType":       "body.data.form",
				"bin":            "body.data.masked",
				"last4":          "body.data.masked",
				"expiryMonth":    "body.data.expiry.split('/')[0]",
				"expiryYear":     "body.data.expiry.split('/')[1]",
			}},
			{EventTypes: []string{"balance.updated"}, Kind: "Balance", Fields: map[string]string{
				"cardID":   "body.data.card_id",
				"balance":  "body.data.available",
				"currency": "body.data.currency",
			}},
			{EventTypes: []string{"txn.settled", "txn.refunded"}, Kind: "Transaction", Fields: map[string]string{
				"cardID":                "body.data.card_id",
				"transactionID":         "body.data.txn_id",
				"transactionType":       "{'purchase': 'Purchase', 'refund': 'Refund'}[body.data.kind]",
				"transactionPhase":      "{'settled': 'Completed', 'pending': 'Pending', 'declined': 'Declined'}[body.data.status]",
				"providerStatus":        "body.data.status",
				"amount":                "body.data.amount",
				"currency":              "body.data.currency",
				"direction":             "string(body.data.amount).startsWith('-') ? 'Debit' : 'Credit'",
				"billingAmount":         "body.data.?billing.amount",
				"billingCurrency":       "body.data.?billing.currency",
				"fee":                   "body.data.?fee",
				"balanceMinor":          "body.data.?balance_after",
				"merchantName":          "body.data.merchant.name",
				"mcc":                   "body.data.merchant.mcc",
				"merchantCountry":       "body.data.merchant.country",
				"channel":               "body.data.?channel",
				"description":           "body.data.?memo",
				"originalTransactionID": "body.data.?original_id",
				"bin":                   "body.data.?card_number",
				"last4":                 "body.data.?card_number",
			}},
			{EventTypes: []string{"holder.kyc"}, Kind: "KYC", Fields: map[string]string{
				"cardID":   "body.data.?card_id",
				"holderID": "body.data.holder_id",
				"kycState": "{'approved': 'Approved', 'rejected': 'Rejected', 'review': 'Pending'}[body.data.result]",
				"reason":   "has(body.data.reason) ? body.data.reason : null",
			}},
			{EventTypes: []string{"card.shipped"}, Kind: "Logistics", Fields: map[string]string{
				"cardID":         "body.data.card_id",
				"logisticsState": "'Shipped'",
				"carrier":        "body.data.carrier",
				"trackingNumber": "body.data.tracking",
			}},
			{EventTypes: []string{"ping"}, Kind: "Ignore"},
		},
	}
}

var now = time.Unix(1718000030, 0).UTC()

func endpoint(t testing.TB, gm *cardsv1alpha1.GenericMapping) *endpointconfig.Resolved {
	t.Helper()
	key, err := endpointconfig.StandardWebhooksKey([]byte(sampleSecret))
	if err != nil {
		t.Fatal(err)
	}
	return &endpointconfig.Resolved{
		Endpoint: &cardsv1alpha1.WebhookEndpoint{
			ObjectMeta: metav1.ObjectMeta{Name: "acme-issuing", Namespace: "payments", UID: "uid-1", Generation: 1},
			Spec:       cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderGeneric, Generic: gm},
		},
		TargetNamespace:    "payments",
		SigningKey:         key,
		TimestampTolerance: 5 * time.Minute,
	}
}

// signed builds Standard Webhooks headers by hand from the spec: HMAC-SHA256 keyed with the base64 part of the
// whsec_ secret over "id.timestamp.body", base64, prefixed "v1,".
func signed(secret, id string, ts int64, body []byte) http.Header {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		panic(err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.%s", id, ts, body)
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return h
}

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decode(t testing.TB, a *Adapter, ep *endpointconfig.Resolved, body []byte, extra http.Header) (*adapter.Result, error) {
	t.Helper()
	h := signed(sampleSecret, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now.Unix(), body)
	for k, v := range extra {
		h[k] = v
	}
	return a.Decode(&adapter.Request{Header: h, Body: body, Received: now, Endpoint: ep})
}

func mon(v, c string) *cardsv1alpha1.Money {
	return &cardsv1alpha1.Money{Value: cardsv1alpha1.Decimal(v), Currency: c}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

type tableCase struct {
	file    string
	mapping func() *cardsv1alpha1.GenericMapping
	header  http.Header
	unknown bool
	events  int
	check   func(t *testing.T, ev *event.Event)
}

var table = []tableCase{
	{file: "sample-card.created.json", mapping: sampleMapping, events: 1, check: func(t *testing.T, ev *event.Event) {
		want(t, ev.ID, "evt_1PQxCard01")
		want(t, ev.CardID, "ic_1PQxAbCdEf")
		want(t, ev.OccurredAt, time.Unix(1718000000, 0).UTC())
		want(t, ev.Card.Phase, cardsv1alpha1.CardActive)
		want(t, ev.Card.ProviderStatus, "active")
		want(t, *ev.Card.Number, cardsv1alpha1.MaskedNumber{Last4: "4242"})
		want(t, *ev.Card.Expiry, cardsv1alpha1.Expiry{Month: 12, Year: 2027})
		want(t, ev.Transaction == nil && ev.Balance == nil, true)
	}},
	{file: "sample-card.updated.json", mapping: sampleMapping, events: 1, check: func(t *testing.T, ev *event.Event) {
		want(t, ev.Card.Phase, cardsv1alpha1.CardFrozen)
		want(t, ev.Card.ProviderStatus, "inactive")
		want(t, ev.OccurredAt, time.Unix(1718000300, 0).UTC())
	}},
	{file: "sample-transaction.created.json", mapping: sampleMapping, events: 1, check: func(t *testing.T, ev *event.Event) {
		want(t, ev.ID, "evt_1PQxTxn001")
		want(t, ev.CardID, "ic_1PQxAbCdEf")
		want(t, ev.Card == nil, true)
		tx := ev.Transaction
		want(t, tx.ID, "ipi_1PQxTxnAbc")
		want(t, tx.Type, cardsv1alpha1.TransactionPurchase)
		want(t, tx.Phase, cardsv1alpha1.TransactionCompleted)
		want(t, *tx.Amount, *mon("12.50", "USD"))
		want(t, tx.Direction, cardsv1alpha1.Direction("")) // the sample strips the sign itself and maps no direction
		want(t, *tx.Merchant, cardsv1alpha1.Merchant{Name: "ROCKET RAMEN", MCC: "5814"})
	}},
	{file: "sample-transaction.refund.json", mapping: sampleMapping, events: 1, check: func(t *testing.T, ev *event.Event) {
		tx := ev.Transaction
		want(t, tx.Type, cardsv1alpha1.TransactionRefund)
		want(t, *tx.Amount, *mon("500", "JPY")) // JPY has no minor unit
		want(t, ev.OccurredAt, time.Unix(1718000900, 0).UTC())
	}},
	{file: "sample-unknown.json", mapping: sampleMapping, unknown: true},

	{file: "acme-card.json", mapping: acmeMapping, events: 1, check: func(t *testing.T, ev *event.Event) {
		want(t, ev.ID, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W") // the webhook-id header by default
		want(t, ev.CardID, "crd_778")
		want(t, ev.HolderID, "usr_42")
		want(t, ev.OccurredAt, utc("2024-06-10T06:00:00Z"))
		c := ev.Card
		want(t, c.Phase, cardsv1alpha1.CardFrozen)
		want(t, c.ProviderStatus, "FROZEN")
		want(t, c.Reason, "suspected fraud")
		want(t, c.Type, cardsv1alpha1.CardPhysical)
		want(t, *c.Number, cardsv1alpha1.MaskedNumber{BIN: "531993", Last4: "0424"})
		want(t, *c.Expiry, cardsv1alpha1.Expiry{Month: 7, Year: 2029})
	}},
	{file: "acme-balance.json", mapping: acmeMapping, events: 1, check: func(t *testing.T, ev *event.Event) {
		want(t, ev.CardID, "crd_778")
		want(t, ev.OccurredAt, utc("2024-06-10T08:00:00.123Z")) // epoch milliseconds
		want(t, ev.Balance.Available, *mon("1234.50", "EUR"))
		want(t, ev.Card == nil, true)
	}},
	{file: "acme-txn-settled.json", mapping: acmeMapping, events: 1, check: func(t *testing.T, ev *event.Event) {
		want(t, ev.OccurredAt, utc("2024-06-10T09:15:30Z"))
		want(t, *ev.Card.Number, cardsv1alpha1.MaskedNumber{BIN: "411111", Last4: "1111"})
		want(t, ev.Card.Phase, cardsv1alpha1.CardPhase(""))
		want(t, ev.Balance.Available, *mon("1221.00", "EUR"))
		tx := ev.Transaction
		want(t, tx.ID, "T-20240610-0001")
		want(t, tx.Type, cardsv1alpha1.TransactionPurchase)
		want(t, tx.Phase, cardsv1alpha1.TransactionCompleted)
		want(t, tx.ProviderStatus, "settled")
		want(t, tx.Direction, cardsv1alpha1.Debit)
		want(t, *tx.Amount, *mon("12.50", "EUR"))
		want(t, *tx.BillingAmount, *mon("13.40", "USD"))
		want(t, *tx.Fee, *mon("0.35", "EUR"))
		want(t, *tx.Merchant, cardsv1alpha1.Merchant{Name: "Café Zürich", MCC: "0742", Country: "DE"})
		want(t, tx.Channel, "ecommerce")
		want(t, tx.Description, "order 1138")
		want(t, tx.OriginalTransactionID, "")
	}},
	{file: "acme-txn-refunded.json", mapping: acmeMapping, events: 1, check: func(t *testing.T, ev *event.Event) {
		want(t, ev.Card == nil && ev.Balance == nil, true)
		tx := ev.Transaction
		want(t, tx.Type, cardsv1alpha1.TransactionRefund)
		want(t, tx.Direction, cardsv1alpha1.Credit)
		want(t, *tx.Amount, *mon("12.50", "EUR"))
		want(t, tx.BillingAmount == nil && tx.Fee == nil, true)
		want(t, tx.OriginalTransactionID, "T-20240610-0001")
		want(t, tx.Merchant.Country, "DEU")
	}},
	{file: "acme-kyc.json", mapping: acmeMapping, events: 1, check: func(t *testing.T, ev *event.Event) {
		want(t, ev.CardID, "")
		want(t, ev.HolderID, "usr_42")
		want(t, *ev.KYC, event.KYC{State: cardsv1alpha1.KYCRejected, Reason: "document expired"})
	}},
	{file: "acme-shipped.json", mapping: acmeMapping, events: 1, check: func(t *testing.T, ev *event.Event) {
		want(t, *ev.Logistics, event.Logistics{State: cardsv1alpha1.LogisticsShipped, Carrier: "DHL", TrackingNumber: "1Z999AA10123456784"})
	}},
	{file: "acme-ping.json", mapping: acmeMapping, events: 0},
	// The event type may come from a header.
	{file: "acme-ping.json", mapping: acmeMapping, header: http.Header{"X-Acme-Event": {"balance.refreshed"}}, unknown: true},
}

func want[T comparable](t *testing.T, got, exp T) {
	t.Helper()
	if got != exp {
		t.Errorf("got %+v, want %+v", got, exp)
	}
}

func TestDecodeTable(t *testing.T) {
	a := &Adapter{}
	for _, tc := range table {
		t.Run(tc.file, func(t *testing.T) {
			res, err := decode(t, a, endpoint(t, tc.mapping()), testdata(t, tc.file), tc.header)
			if err != nil {
				t.Fatal(err)
			}
			var body struct{ Type string }
			_ = json.Unmarshal(testdata(t, tc.file), &body)
			if tc.header == nil {
				want(t, res.EventType, body.Type)
			}
			want(t, res.Unknown, tc.unknown)
			want(t, res.DeliveryID, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
			want(t, res.Ack.Status, http.StatusOK)
			want(t, string(res.Ack.Body), `{"received":true}`)
			if len(res.Events) != tc.events {
				t.Fatalf("got %d events, want %d", len(res.Events), tc.events)
			}
			if tc.events == 1 {
				want(t, res.Events[0].Type, res.EventType)
				tc.check(t, &res.Events[0])
			}
		})
	}
}

// TestStandardWebhooksVector checks verification against the spec's published test vector.
func TestStandardWebhooksVector(t *testing.T) {
	key, err := endpointconfig.StandardWebhooksKey([]byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
	if err != nil {
		t.Fatal(err)
	}
	ep := endpoint(t, &cardsv1alpha1.GenericMapping{EventType: "'test'",
		Events: []cardsv1alpha1.GenericEventRule{{EventTypes: []string{"test"}, Kind: "Ignore"}}})
	ep.SigningKey = key
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	req := &adapter.Request{Header: h, Body: []byte(`{"test": 2432232314}`), Received: time.Unix(1614265330, 0), Endpoint: ep}
	res, err := (&Adapter{}).Decode(req)
	if err != nil {
		t.Fatal(err)
	}
	want(t, res.EventType, "test")
	want(t, res.DeliveryID, "msg_p5jXN8AQM9LWM0D4loKWxJek")
	req.Body = []byte(`{"test": 2432232315}`)
	if _, err := (&Adapter{}).Decode(req); reason(err) != cardsv1alpha1.ReasonInvalidSignature {
		t.Fatalf("tampered vector: %v", err)
	}
}

func reason(err error) string {
	if r, ok := adapter.AsRejection(err); ok {
		return r.Reason
	}
	if err == nil {
		return ""
	}
	return "not a rejection: " + err.Error()
}

func TestVerificationFailures(t *testing.T) {
	body := testdata(t, "sample-card.created.json")
	good := func() http.Header { return signed(sampleSecret, "msg_1", now.Unix(), body) }
	without := func(k string) http.Header { h := good(); h.Del(k); return h }
	with := func(k, v string) http.Header { h := good(); h.Set(k, v); return h }
	otherSecret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("another-secret-of-32-bytes-long!"))
	cases := []struct {
		name      string
		header    http.Header
		body      []byte
		signature string
		key       []byte
		reason    string
	}{
		{name: "good", header: good()},
		{name: "missing id", header: without("webhook-id"), reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "missing timestamp", header: without("webhook-timestamp"), reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "missing signature", header: without("webhook-signature"), reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "wrong key", header: signed(otherSecret, "msg_1", now.Unix(), body), reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "tampered body", header: good(), body: []byte(strings.Replace(string(body), "active", "inactiv", 1)), reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "other id", header: with("webhook-id", "msg_2"), reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "other timestamp", header: with("webhook-timestamp", strconv.FormatInt(now.Unix()+1, 10)), reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "not base64", header: with("webhook-signature", "v1,***"), reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "v1a only", header: with("webhook-signature", "v1a,"+strings.TrimPrefix(good().Get("webhook-signature"), "v1,")), reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "stale", header: signed(sampleSecret, "msg_1", now.Add(-6*time.Minute).Unix(), body), reason: cardsv1alpha1.ReasonStaleTimestamp},
		{name: "future", header: signed(sampleSecret, "msg_1", now.Add(6*time.Minute).Unix(), body), reason: cardsv1alpha1.ReasonStaleTimestamp},
		{name: "within tolerance", header: signed(sampleSecret, "msg_1", now.Add(-4*time.Minute).Unix(), body)},
		{name: "several signatures, one good", header: with("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32))+" v1a,abc "+good().Get("webhook-signature"))},
		{name: "several header values", header: func() http.Header {
			h := good()
			h["Webhook-Signature"] = []string{"v1,AAAA", h.Get("webhook-signature")}
			return h
		}()},
		{name: "no key on endpoint", header: good(), key: []byte{}, reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "typo in signature mode still verifies", header: without("webhook-signature"), signature: "standardwebhooks", reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "None accepts unsigned", header: http.Header{}, signature: "None"},
		{name: "None ignores a bad signature", header: with("webhook-signature", "v1,AAAA"), signature: "None"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gm := sampleMapping()
			if tc.signature != "" {
				gm.Signature = tc.signature
			}
			ep := endpoint(t, gm)
			if tc.key != nil {
				ep.SigningKey = tc.key
			}
			b := body
			if tc.body != nil {
				b = tc.body
			}
			res, err := (&Adapter{}).Decode(&adapter.Request{Header: tc.header, Body: b, Received: now, Endpoint: ep})
			if got := reason(err); got != tc.reason {
				t.Fatalf("got reason %q (%v), want %q", got, err, tc.reason)
			}
			if tc.reason == "" && len(res.Events) != 1 {
				t.Fatalf("got %d events", len(res.Events))
			}
			if tc.reason != "" {
				r, _ := adapter.AsRejection(err)
				want(t, r.Status, http.StatusUnauthorized)
			}
		})
	}
}

func TestNoneModeDefaults(t *testing.T) {
	gm := sampleMapping()
	gm.Signature = "None"
	gm.EventID, gm.OccurredAt = "", ""
	body := testdata(t, "sample-card.created.json")
	res, err := (&Adapter{}).Decode(&adapter.Request{Header: http.Header{}, Body: body, Received: now, Endpoint: endpoint(t, gm)})
	if err != nil {
		t.Fatal(err)
	}
	ev := res.Events[0]
	want(t, ev.ID, "")
	want(t, ev.OccurredAt.IsZero(), true)
	want(t, res.DeliveryID, "")
	// With headers, they are the defaults even unsigned.
	h := http.Header{"Webhook-Id": {"msg_9"}, "Webhook-Timestamp": {"1718000001"}}
	res, err = (&Adapter{}).Decode(&adapter.Request{Header: h, Body: body, Received: now, Endpoint: endpoint(t, gm)})
	if err != nil {
		t.Fatal(err)
	}
	want(t, res.Events[0].ID, "msg_9")
	want(t, res.Events[0].OccurredAt, time.Unix(1718000001, 0).UTC())
	want(t, res.DeliveryID, "msg_9")
}

func TestEncodeRoundTrip(t *testing.T) {
	a := &Adapter{}
	for _, tc := range table {
		ep := endpoint(t, tc.mapping())
		payload := testdata(t, tc.file)
		h, body, err := Encode(ep, payload, now)
		if err != nil {
			t.Fatal(err)
		}
		// Check the signature by hand, independently of verify.
		id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
		want(t, ts, strconv.FormatInt(now.Unix(), 10))
		want(t, strings.HasPrefix(id, "msg_"), true)
		want(t, h.Get("webhook-signature"), signed(sampleSecret, id, now.Unix(), body).Get("webhook-signature"))
		for k, v := range tc.header {
			h[k] = v
		}
		res, err := a.Decode(&adapter.Request{Header: h, Body: body, Received: now.Add(time.Second), Endpoint: ep})
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		want(t, res.DeliveryID, id)
		want(t, len(res.Events), tc.events)
	}
	h2, _, _ := Encode(endpoint(t, sampleMapping()), []byte(`{}`), now)
	h3, _, _ := Encode(endpoint(t, sampleMapping()), []byte(`{}`), now)
	if h2.Get("webhook-id") == h3.Get("webhook-id") {
		t.Error("Encode reuses webhook-id")
	}
	gm := sampleMapping()
	gm.Signature = "None"
	h, _, err := Encode(endpoint(t, gm), []byte(`{}`), now)
	if err != nil || h.Get("webhook-signature") != "" || h.Get("webhook-id") == "" {
		t.Errorf("None: %v %v", h, err)
	}
	ep := endpoint(t, sampleMapping())
	ep.SigningKey = nil
	if _, _, err := Encode(ep, []byte(`{}`), now); err == nil {
		t.Error("Encode signed without a key")
	}
}

// TestAnUnforeseenPhaseIsUnknown: a phase value the mapping yields that is not a phase is a provider status
// nobody mapped. It was a 400, which the provider retries until it gives up; it is stored as the neutral phase
// Unknown with the value kept verbatim as the provider status.
func TestAnUnforeseenPhaseIsUnknown(t *testing.T) {
	gm := sampleMapping()
	gm.Events[0].Fields["phase"] = "body.data.type"
	delete(gm.Events[0].Fields, "providerStatus")
	res, err := decode(t, &Adapter{}, endpoint(t, gm), testdata(t, "sample-card.created.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Events[0].Card
	if c == nil || c.Phase != cardsv1alpha1.CardUnknown || c.ProviderStatus != "virtual" {
		t.Fatalf("card = %+v, want phase Unknown with provider status \"virtual\"", c)
	}
}

// TestMalformed covers bad bodies and mappings that fail at evaluation; each message names the field.
func TestMalformed(t *testing.T) {
	card := func(fields map[string]string) func() *cardsv1alpha1.GenericMapping {
		return func() *cardsv1alpha1.GenericMapping {
			gm := sampleMapping()
			for k, v := range fields {
				gm.Events[0].Fields[k] = v
			}
			return gm
		}
	}
	acme := func(rule int, fields map[string]string) func() *cardsv1alpha1.GenericMapping {
		return func() *cardsv1alpha1.GenericMapping {
			gm := acmeMapping()
			for k, v := range fields {
				if v == "" {
					delete(gm.Events[rule].Fields, k)
				} else {
					gm.Events[rule].Fields[k] = v
				}
			}
			return gm
		}
	}
	sampleCard := string(testdata(t, "sample-card.created.json"))
	settled := string(testdata(t, "acme-txn-settled.json"))
	items := `{"type":"card.created","id":"e","created":1,"data":{"id":"c","status":"active","last4":"4242","exp_month":1,"exp_year":2030,"items":[` +
		strings.TrimSuffix(strings.Repeat("1,", 2000), ",") + `]}}`
	cases := []struct {
		name    string
		mapping func() *cardsv1alpha1.GenericMapping
		body    string
		msg     string
	}{
		{name: "not JSON", mapping: sampleMapping, body: `{"type":`, msg: "not valid JSON"},
		{name: "trailing data", mapping: sampleMapping, body: `{} {}`, msg: "after the JSON value"},
		{name: "no type", mapping: sampleMapping, body: `{"id":"x"}`, msg: "eventType: no such key: type"},
		{name: "empty type", mapping: sampleMapping, body: `{"type":""}`, msg: "empty event type"},
		{name: "type is an object", mapping: sampleMapping, body: `{"type":{}}`, msg: "eventType"},
		{name: "missing key", mapping: sampleMapping, body: strings.Replace(sampleCard, `"last4"`, `"lastfour"`, 1), msg: "card.created: events[0].fields.last4: no such key: last4"},
		{name: "unmapped status", mapping: sampleMapping, body: strings.Replace(sampleCard, `"status":"active"`, `"status":"lost"`, 1), msg: "fields.phase: no such key: lost"},
		{name: "bad enum at runtime", mapping: card(map[string]string{"cardType": "body.data.status"}), body: sampleCard, msg: `card.created: cardType: "active" is not one of`},
		{name: "empty cardID", mapping: card(map[string]string{"cardID": "''"}), body: sampleCard, msg: "card.created: cardID is empty"},
		{name: "bad eventID", mapping: sampleMapping, body: strings.Replace(sampleCard, `"id":"evt_1PQxCard01"`, `"idx":1`, 1), msg: "eventID: no such key: id"},
		{name: "bad occurredAt", mapping: sampleMapping, body: strings.Replace(sampleCard, `"created":1718000000`, `"created":"yesterday"`, 1), msg: "occurredAt"},
		{name: "bad month", mapping: sampleMapping, body: strings.Replace(sampleCard, `"exp_month":12`, `"exp_month":13`, 1), msg: "expiryMonth 13 is not 1 to 12"},
		{name: "month is a bool", mapping: sampleMapping, body: strings.Replace(sampleCard, `"exp_month":12`, `"exp_month":true`, 1), msg: "expiryMonth yields a bool"},
		{name: "half an expiry", mapping: sampleMapping, body: strings.Replace(sampleCard, `"exp_month":12`, `"exp_month":null`, 1), msg: "both be set"},
		{name: "bad last4", mapping: sampleMapping, body: strings.Replace(sampleCard, `"last4":"4242"`, `"last4":"none"`, 1), msg: "last4 yields no last four digits"},
		{name: "PAN in free text", mapping: card(map[string]string{"providerStatus": "body.data.number"}), body: sampleCard, msg: "providerStatus contains what looks like a full card number"},
		{name: "runtime double", mapping: acme(2, map[string]string{"amount": "dyn(12.5)"}), body: settled, msg: "amount yields a double (12.5); amounts must be decimal strings or integers"},
		{name: "exponent amount", mapping: acmeMapping, body: strings.Replace(settled, `"amount":-12.5`, `"amount":-1.25e1`, 1), msg: "amount: amount \"-1.25e1\" uses an exponent"},
		{name: "no currency", mapping: acmeMapping, body: strings.Replace(settled, `"currency":"EUR"`, `"currency":null`, 1), msg: "is set but currency is empty"},
		{name: "bad currency", mapping: acmeMapping, body: strings.Replace(settled, `"currency":"EUR"`, `"currency":"EURO"`, 1), msg: "currency \"EURO\" is not an ISO 4217 code"},
		{name: "billing without currency", mapping: acmeMapping, body: strings.Replace(settled, `"currency":"usd"`, `"cur":"usd"`, 1), msg: "billingAmount is set but billingCurrency is empty"},
		{name: "minor amount not integer", mapping: sampleMapping, body: strings.Replace(string(testdata(t, "sample-transaction.created.json")), `"amount":-1250`, `"amount":"12.5"`, 1), msg: "fields.amountMinor"},
		{name: "bad mcc", mapping: acmeMapping, body: strings.Replace(settled, `"mcc":742`, `"mcc":"retail"`, 1), msg: "mcc \"retail\" is not a 4-digit"},
		{name: "bad country", mapping: acmeMapping, body: strings.Replace(settled, `"country":"de"`, `"country":"Germany"`, 1), msg: "merchantCountry \"GERMANY\""},
		{name: "empty transaction ID", mapping: acmeMapping, body: strings.Replace(settled, `"txn_id":"T-20240610-0001"`, `"txn_id":null`, 1), msg: "transactionID is empty"},
		{name: "long transaction ID", mapping: acmeMapping, body: strings.Replace(settled, `"txn_id":"T-20240610-0001"`, `"txn_id":"`+strings.Repeat("x", 129)+`"`, 1), msg: "transactionID is longer than 128"},
		{name: "KYC without card or holder", mapping: acmeMapping, body: `{"type":"holder.kyc","occurred_at":1,"data":{"holder_id":"","result":"approved"}}`, msg: "cardID is empty"},
		{name: "balance null", mapping: acmeMapping, body: `{"type":"balance.updated","occurred_at":1,"data":{"card_id":"c","available":null,"currency":"EUR"}}`, msg: "balance is empty"},
		{name: "cost limit", mapping: card(map[string]string{"providerStatus": "string(body.data.items.map(x, body.data.items.filter(y, y == x).size()).size())"}), body: items, msg: "fields.providerStatus: operation cancelled: actual cost limit exceeded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(t, &Adapter{}, endpoint(t, tc.mapping()), []byte(tc.body), nil)
			r, ok := adapter.AsRejection(err)
			if !ok {
				t.Fatalf("got %v, want a rejection", err)
			}
			want(t, r.Reason, cardsv1alpha1.ReasonMalformed)
			want(t, r.Status, http.StatusBadRequest)
			if !strings.Contains(r.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", r.Message, tc.msg)
			}
		})
	}
}

func TestInvalidMappingAtDecode(t *testing.T) {
	gm := sampleMapping()
	gm.Events[0].Fields["phase"] = "'Actve'"
	body := testdata(t, "sample-card.created.json")
	_, err := decode(t, &Adapter{}, endpoint(t, gm), body, nil)
	r, ok := adapter.AsRejection(err)
	if !ok || r.Status != http.StatusServiceUnavailable || r.Reason != cardsv1alpha1.ReasonInvalidConfig {
		t.Fatalf("got %v", err)
	}
	// Verification still comes first: an unsigned request learns nothing about the mapping.
	_, err = (&Adapter{}).Decode(&adapter.Request{Header: http.Header{}, Body: body, Received: now, Endpoint: endpoint(t, gm)})
	want(t, reason(err), cardsv1alpha1.ReasonInvalidSignature)
	ep := endpoint(t, gm)
	ep.Endpoint.Spec.Generic = nil
	_, err = decode(t, &Adapter{}, ep, body, nil)
	want(t, reason(err), cardsv1alpha1.ReasonInvalidConfig)
}

func TestCompile(t *testing.T) {
	if _, err := mapping.Compile(sampleMapping()); err != nil {
		t.Fatalf("sample: %v", err)
	}
	if _, err := mapping.Compile(acmeMapping()); err != nil {
		t.Fatalf("acme: %v", err)
	}
	set := func(rule int, name, expr string) func(*cardsv1alpha1.GenericMapping) {
		return func(gm *cardsv1alpha1.GenericMapping) {
			if expr == "" {
				delete(gm.Events[rule].Fields, name)
			} else {
				gm.Events[rule].Fields[name] = expr
			}
		}
	}
	cases := []struct {
		name string
		edit func(*cardsv1alpha1.GenericMapping)
		msg  string
	}{
		{"bad signature", func(gm *cardsv1alpha1.GenericMapping) { gm.Signature = "HMAC" }, `spec.generic.signature: "HMAC"`},
		{"no eventType", func(gm *cardsv1alpha1.GenericMapping) { gm.EventType = " " }, "spec.generic.eventType: an expression is required"},
		{"syntax error", func(gm *cardsv1alpha1.GenericMapping) { gm.EventType = "body.type ==" }, "spec.generic.eventType: column"},
		{"undeclared", func(gm *cardsv1alpha1.GenericMapping) { gm.EventID = "bdy.id" }, "spec.generic.eventID: column 1: undeclared reference to 'bdy'"},
		{"occurredAt bool", func(gm *cardsv1alpha1.GenericMapping) { gm.OccurredAt = "true" }, "spec.generic.occurredAt: yields bool"},
		{"no rules", func(gm *cardsv1alpha1.GenericMapping) { gm.Events = nil }, "spec.generic.events: at least one rule"},
		{"bad kind", func(gm *cardsv1alpha1.GenericMapping) { gm.Events[1].Kind = "Payment" }, `spec.generic.events[1].kind: "Payment"`},
		{"no event types", func(gm *cardsv1alpha1.GenericMapping) { gm.Events[1].EventTypes = nil }, "spec.generic.events[1].eventTypes: at least one"},
		{"empty event type", func(gm *cardsv1alpha1.GenericMapping) { gm.Events[1].EventTypes = []string{""} }, "spec.generic.events[1].eventTypes[0]: empty"},
		{"duplicate event type", func(gm *cardsv1alpha1.GenericMapping) {
			gm.Events[1].EventTypes = append(gm.Events[1].EventTypes, "card.updated")
		},
			`spec.generic.events[1].eventTypes: "card.updated" is already matched by events[0]`},
		{"unknown field", set(0, "pan", "body.data.number"), "spec.generic.events[0].fields.pan: unknown field name"},
		{"field of another kind", set(0, "amount", "body.data.amount"), "spec.generic.events[0].fields.amount: not a field of kind CardLifecycle (only of Transaction)"},
		{"no cardID", set(0, "cardID", ""), "spec.generic.events[0].fields.cardID: required"},
		{"no transactionID", set(1, "transactionID", ""), "spec.generic.events[1].fields.transactionID: required for kind Transaction"},
		{"major and minor", set(1, "amount", "body.data.amount"), "spec.generic.events[1].fields: amount and amountMinor are exclusive"},
		{"no currency", set(1, "currency", ""), "spec.generic.events[1].fields.currency: required with amountMinor"},
		{"billing alone", set(1, "billingAmount", "body.data.merchant_amount"), "billingAmount and billingCurrency go together"},
		{"half expiry", set(0, "expiryYear", ""), "expiryMonth and expiryYear go together"},
		{"enum constant typo", set(0, "phase", "'Actve'"), `spec.generic.events[0].fields.phase: "Actve" is not one of Requested, PendingActivation, Active`},
		{"enum map typo", set(0, "phase", "{'a': 'Active', 'b': 'Frozn'}[body.data.status]"), `fields.phase: "Frozn" is not one of`},
		{"enum conditional typo", set(1, "transactionType", "body.data.type == 'refund' ? 'Refunds' : 'Purchase'"), `fields.transactionType: "Refunds"`},
		{"enum int", set(1, "transactionPhase", "1"), "fields.transactionPhase: yields int, want a string"},
		{"double amount", set(1, "amountMinor", "1250.0"), "fields.amountMinor: yields a double; amounts must be decimal strings or integers, never doubles"},
		{"double of a field", set(1, "amountMinor", "double(body.data.amount)"), "never doubles"},
		{"bool field", set(0, "providerStatus", "body.data.status == 'active'"), "fields.providerStatus: yields bool, want a string"},
		{"map field", set(0, "providerStatus", "{'a': 1}"), "fields.providerStatus: yields map(string, int)"},
		{"too long", set(0, "providerStatus", "'"+strings.Repeat("a", 1100)+"'"), "longer than 1024"},
		{"empty expression", set(0, "providerStatus", " "), "fields.providerStatus: empty expression"},
		{"Ignore with fields", func(gm *cardsv1alpha1.GenericMapping) { gm.Events[1].Kind = "Ignore" }, "spec.generic.events[1].fields: a rule of kind Ignore"},
		{"Balance without balance", func(gm *cardsv1alpha1.GenericMapping) {
			gm.Events = []cardsv1alpha1.GenericEventRule{{EventTypes: []string{"b"}, Kind: "Balance", Fields: map[string]string{"cardID": "body.c"}}}
		}, "spec.generic.events[0].fields.balance or balanceMinor: required for kind Balance"},
		{"KYC without state", func(gm *cardsv1alpha1.GenericMapping) {
			gm.Events = []cardsv1alpha1.GenericEventRule{{EventTypes: []string{"k"}, Kind: "KYC", Fields: map[string]string{"cardID": "body.c"}}}
		}, "fields.kycState: required for kind KYC"},
		{"Logistics without state", func(gm *cardsv1alpha1.GenericMapping) {
			gm.Events = []cardsv1alpha1.GenericEventRule{{EventTypes: []string{"l"}, Kind: "Logistics", Fields: map[string]string{"cardID": "body.c"}}}
		}, "fields.logisticsState: required for kind Logistics"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gm := sampleMapping()
			tc.edit(gm)
			_, err := mapping.Compile(gm)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %q", err, tc.msg)
			}
		})
	}
	if _, err := mapping.Compile(nil); err == nil {
		t.Error("nil mapping compiled")
	}
}

// TestNoSecretsInEvents: full card numbers and CVCs in the bodies never reach an event.
func TestNoSecretsInEvents(t *testing.T) {
	a := &Adapter{}
	for _, tc := range table {
		body := testdata(t, tc.file)
		res, err := decode(t, a, endpoint(t, tc.mapping()), body, tc.header)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range res.Events {
			text := fmt.Sprintf("%+v", ev)
			for _, fact := range []any{ev.Card, ev.Balance, ev.Transaction, ev.KYC, ev.Logistics} {
				text += fmt.Sprintf(" %+v", fact)
			}
			if ev.Card != nil {
				text += fmt.Sprintf(" %+v %+v", ev.Card.Number, ev.Card.Expiry)
			}
			if ev.Transaction != nil {
				text += fmt.Sprintf(" %+v %+v %+v %+v", ev.Transaction.Amount, ev.Transaction.BillingAmount, ev.Transaction.Fee, ev.Transaction.Merchant)
			}
			js, _ := json.Marshal(ev)
			// Every pointer's address is masked, not only the event's own: a random address may hold "987".
			text = pointerAddr.ReplaceAllString(text, "0x…") + string(js)
			if found := pan.Find(text); len(found) > 0 {
				t.Errorf("%s: full card number in event: %s", tc.file, text)
			}
			if strings.Contains(text, "987") { // the CVC of the samples
				t.Errorf("%s: CVC in event: %s", tc.file, text)
			}
		}
	}
}

func TestMappingCache(t *testing.T) {
	a := &Adapter{}
	ep := endpoint(t, sampleMapping())
	body := testdata(t, "sample-card.updated.json")
	m1, _ := a.mapping(ep.Endpoint)
	m2, _ := a.mapping(ep.Endpoint)
	if m1 == nil || m1 != m2 {
		t.Fatal("mapping not cached")
	}
	// A new generation with a new mapping is compiled afresh.
	ep.Endpoint.Generation = 2
	ep.Endpoint.Spec.Generic.Events[0].Fields["phase"] = "'Locked'"
	res, err := decode(t, a, ep, body, nil)
	if err != nil {
		t.Fatal(err)
	}
	want(t, res.Events[0].Card.Phase, cardsv1alpha1.CardLocked)
	// So is an in-memory edit without a generation bump.
	ep.Endpoint.Spec.Generic.Events[0].Fields["phase"] = "'Closed'"
	res, err = decode(t, a, ep, body, nil)
	if err != nil {
		t.Fatal(err)
	}
	want(t, res.Events[0].Card.Phase, cardsv1alpha1.CardClosed)
	a.Forget(ep.Endpoint.UID)
	if _, ok := a.mappings().Get(ep.Endpoint.UID); ok {
		t.Error("Forget kept the mapping")
	}
}

// Item 13 of the issue: the compiled mappings were kept in a sync.Map keyed by endpoint UID with no bound, so
// every UID ever seen stayed in memory. A million distinct UIDs (through the cache's compile hook: compiling a
// real mapping a million times would take minutes) leave MappingCacheSize entries and a bounded heap.
func TestMappingCacheBounded(t *testing.T) {
	a := &Adapter{}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 1_000_000
	compiles := 0
	for i := 0; i < n; i++ {
		uid := k8stypes.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i))
		c := a.cached(uid, func(*compiled) bool { return true }, func() *compiled {
			compiles++
			return &compiled{generation: int64(i), spec: &cardsv1alpha1.GenericMapping{EventType: "body.type"}}
		})
		if c.generation != int64(i) {
			t.Fatalf("key %d got the entry of generation %d", i, c.generation)
		}
		if i%100_000 == 0 && a.mappings().Len() > MappingCacheSize {
			t.Fatalf("after %d keys the cache holds %d entries, bound %d", i+1, a.mappings().Len(), MappingCacheSize)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d distinct endpoint UIDs, %d compiles: %d cached (bound %d), heap grew %d KiB", n, compiles, a.mappings().Len(), MappingCacheSize, growth/1024)
	if got := a.mappings().Len(); got != MappingCacheSize {
		t.Errorf("cache holds %d entries, want its bound %d", got, MappingCacheSize)
	}
	if growth > 16<<20 {
		t.Errorf("heap grew %d MiB for a cache bounded at %d entries", growth>>20, MappingCacheSize)
	}
	// The most recent endpoints are still cached (no compile); the oldest were evicted (compiled again).
	compiles = 0
	recent := k8stypes.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", n-1))
	a.cached(recent, func(*compiled) bool { return true }, func() *compiled { compiles++; return &compiled{} })
	a.cached("00000000-0000-0000-0000-000000000000", func(*compiled) bool { return true }, func() *compiled { compiles++; return &compiled{} })
	if compiles != 1 {
		t.Errorf("%d compiles for one recent and one evicted endpoint, want 1", compiles)
	}
}

// Past the bound, real endpoints keep decoding: an evicted mapping is compiled again on its next callback.
func TestMappingCacheEviction(t *testing.T) {
	a := &Adapter{}
	body := testdata(t, "sample-card.updated.json")
	first := endpoint(t, sampleMapping())
	first.Endpoint.UID = "first"
	if _, err := decode(t, a, first, body, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < MappingCacheSize; i++ {
		a.cached(k8stypes.UID(strconv.Itoa(i)), func(*compiled) bool { return true }, func() *compiled { return &compiled{} })
	}
	if _, ok := a.mappings().Get(first.Endpoint.UID); ok {
		t.Fatal("the least recently used mapping was not evicted")
	}
	res, err := decode(t, a, first, body, nil)
	if err != nil || len(res.Events) != 1 {
		t.Fatalf("after eviction: %v %+v", err, res)
	}
	if a.mappings().Len() != MappingCacheSize {
		t.Errorf("cache holds %d entries", a.mappings().Len())
	}
}

func TestConcurrentDecode(t *testing.T) {
	a := &Adapter{}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, tc := range table {
				ep := endpoint(t, tc.mapping())
				ep.Endpoint.UID = k8stypes.UID("uid-" + tc.file[:4]) // one endpoint per mapping, shared by the goroutines
				res, err := decode(t, a, ep, testdata(t, tc.file), tc.header)
				if err != nil {
					t.Error(err)
					return
				}
				if len(res.Events) != tc.events {
					t.Errorf("%s: %d events", tc.file, len(res.Events))
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkDecode: a verified transaction through a cached mapping.
func BenchmarkDecode(b *testing.B) {
	a, ep := &Adapter{}, endpoint(b, acmeMapping())
	body := testdata(b, "acme-txn-settled.json")
	h := signed(sampleSecret, "msg_bench", now.Unix(), body)
	for b.Loop() {
		if _, err := a.Decode(&adapter.Request{Header: h, Body: body, Received: now, Endpoint: ep}); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			f.Add(testdata(f, e.Name()), "")
		}
	}
	f.Add([]byte(`{"type":"txn.settled","occurred_at":"x","data":{"card_id":1,"txn_id":2,"kind":"refund","status":"settled","amount":1e400,"currency":"eur","merchant":{"name":"4111111111111111","mcc":-1,"country":7}}}`), "txn.settled")
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`), "")
	f.Add([]byte(`{"type":"card.status","occurred_at":-1,"data":{"card_id":"c","state":"ACTIVE","form":"virtual","masked":"•••• 7907","expiry":"99/99"}}`), "")
	sample, acme := endpoint(f, sampleMapping()), endpoint(f, acmeMapping())
	acme.Endpoint.UID = "uid-acme"
	a := &Adapter{}
	f.Fuzz(func(t *testing.T, body []byte, eventHeader string) {
		for _, ep := range []*endpointconfig.Resolved{sample, acme} {
			h := signed(sampleSecret, "msg_fuzz", now.Unix(), body)
			if eventHeader != "" {
				h.Set("X-Acme-Event", eventHeader)
			}
			res, err := a.Decode(&adapter.Request{Header: h, Body: body, Received: now, Endpoint: ep})
			if err != nil {
				if _, ok := adapter.AsRejection(err); !ok {
					t.Fatalf("not a rejection: %v", err)
				}
				continue
			}
			if res == nil {
				t.Fatal("nil result without error")
			}
			for _, ev := range res.Events {
				if ev.Card != nil && ev.Card.Number != nil {
					if len(pan.Find(ev.Card.Number.BIN+ev.Card.Number.Last4)) > 0 {
						t.Fatalf("full number kept: %+v", ev.Card.Number)
					}
				}
			}
			// Unsigned, the same body must be refused.
			if _, err := a.Decode(&adapter.Request{Header: http.Header{}, Body: body, Received: now, Endpoint: ep}); reason(err) != cardsv1alpha1.ReasonInvalidSignature {
				t.Fatalf("unsigned body accepted: %v", err)
			}
		}
	})
}

// pointerAddr matches the addresses %+v prints for pointers: they are random hex and could contain a secret's
// digits by chance, so the leak checks leave them out.
var pointerAddr = regexp.MustCompile(`0x[0-9a-f]+`)
