package alchemypay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// seedOrder is the seed's own example (004_b60e530aea0429de.txt lines 35-59), byte for byte.
func seedOrder(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "seed", "recharge-order-success.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func zoned(tz string) *endpointconfig.Resolved {
	ep := endpoint()
	if tz != "" {
		ep.Endpoint.Spec.AlchemyPay = &cardsv1alpha1.AlchemyPayOptions{TimeZone: tz}
	}
	return ep
}

func decodeOne(t *testing.T, ep *endpointconfig.Resolved, body []byte) event.Event {
	t.Helper()
	res, err := Adapter{}.Decode(&adapter.Request{Body: body, Received: time.Now(), Endpoint: ep})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(res.Events) != 1 || res.Events[0].Transaction == nil {
		t.Fatalf("want one order event, got %+v", res)
	}
	return res.Events[0]
}

// Defect: orderTime was read as UTC, 8 hours late. The seed's orderNo embeds the epoch 1723187469
// (2024-08-09 07:11:09 UTC) and its orderTime reads 15:11:09: the provider's clock is UTC+8.
func TestRegressionOrderTimeZone(t *testing.T) {
	orderNoEpoch := time.Unix(1723187469, 0).UTC()
	for _, c := range []struct {
		tz   string
		want time.Time
	}{
		{"", orderNoEpoch}, // the default, +08:00
		{"+08:00", orderNoEpoch},
		{"Asia/Singapore", orderNoEpoch},
		{"UTC", time.Date(2024, 8, 9, 15, 11, 9, 0, time.UTC)},
		{"-05:30", time.Date(2024, 8, 9, 20, 41, 9, 0, time.UTC)},
	} {
		ev := decodeOne(t, zoned(c.tz), seedOrder(t))
		if got := ev.Transaction.OccurredAt; !got.Equal(c.want) {
			t.Errorf("timeZone %q: occurredAt %s, want %s", c.tz, got.UTC().Format(time.RFC3339), c.want.Format(time.RFC3339))
		}
	}
	// Without an endpoint (or without options) the default applies too.
	res, err := Adapter{}.Decode(&adapter.Request{Body: seedOrder(t)})
	if err != nil || !res.Events[0].Transaction.OccurredAt.Equal(orderNoEpoch) {
		t.Errorf("no endpoint: %v, %+v", err, res)
	}
}

// A bad zone is refused by the reconciler, once per generation, naming the field.
func TestRegressionTimeZoneValidated(t *testing.T) {
	v, ok := any(Adapter{}).(adapter.ConfigValidator)
	if !ok {
		t.Fatal("Adapter does not implement adapter.ConfigValidator: spec.alchemypay.timeZone is never checked")
	}
	for tz, bad := range map[string]bool{"": false, "+08:00": false, "-03:30": false, "+0800": false, "Asia/Singapore": false,
		"UTC": false, "Mars/Olympus": true, "Local": true, "+25:00": true, "+08:60": true, "8": true} {
		err := v.ValidateConfig(zoned(tz).Endpoint)
		if bad != (err != nil) {
			t.Errorf("timeZone %q: error %v, want error %v", tz, err, bad)
		}
		if err != nil && !strings.Contains(err.Error(), "spec.alchemypay.timeZone") {
			t.Errorf("timeZone %q: %q does not name spec.alchemypay.timeZone", tz, err)
		}
	}
}

// A bad zone that reached the receiver anyway is not acknowledged: Alchemy Pay retries, and the order survives
// the fix of the endpoint.
func TestBadZoneAtDecodeIsRetried(t *testing.T) {
	_, err := Adapter{}.Decode(&adapter.Request{Body: seedOrder(t), Endpoint: zoned("Mars/Olympus")})
	r, ok := adapter.AsRejection(err)
	if !ok || r.Status != 503 || r.Reason != cardsv1alpha1.ReasonInvalidConfig || !strings.Contains(r.Message, "spec.alchemypay.timeZone") {
		t.Errorf("Decode with a bad zone: %v", err)
	}
}

// Defect: both exchange rates and the fee breakdown were dropped.
func TestRegressionRatesAndFeesKept(t *testing.T) {
	tx := decodeOne(t, endpoint(), seedOrder(t)).Transaction
	if tx.ExchangeRate != "1.092759" {
		t.Errorf("exchangeRate %q, want currencyExchangeRate 1.092759 verbatim", tx.ExchangeRate)
	}
	want := map[string]string{"cryptoCurrencyExchangeRate": "1", "applyFee": "0", "rechargeFee": "0.72122094",
		"deliveryFee": "0", "rechargeMarkup": "0.99", "orderAmount": "61.91"}
	for k, v := range want {
		if tx.References[k] != v {
			t.Errorf("references[%s] = %q, want %q (all references %v)", k, tx.References[k], v, tx.References)
		}
	}
}

// Defect: a successful create-card order made a physical card Active; it is only paid for.
func TestRegressionPhysicalCardNotActiveOnCreation(t *testing.T) {
	ev := decodeOne(t, endpoint(), []byte(order(t, map[string]any{"orderType": "1", "cardType": "2"})))
	if ev.Card == nil || ev.Card.Phase != cardsv1alpha1.CardRequested || ev.Card.Type != cardsv1alpha1.CardPhysical {
		t.Errorf("physical card after a paid create-card order: %+v, want Requested", ev.Card)
	}
	ev = decodeOne(t, endpoint(), []byte(order(t, map[string]any{"orderType": "1", "cardType": "1"})))
	if ev.Card == nil || ev.Card.Phase != cardsv1alpha1.CardActive {
		t.Errorf("virtual card after a paid create-card order: %+v, want Active", ev.Card)
	}
}

// Defect: an unknown status was a 400, so Alchemy Pay retried for 24 h and the order was lost.
func TestRegressionUnknownStatusAcknowledged(t *testing.T) {
	ev := decodeOne(t, endpoint(), []byte(order(t, map[string]any{"status": "Processing"})))
	if tx := ev.Transaction; tx.Phase != cardsv1alpha1.TransactionUnknown || tx.ProviderStatus != "Processing" {
		t.Errorf("unknown status: phase %s providerStatus %q, want Unknown and the status verbatim", tx.Phase, tx.ProviderStatus)
	}
	ev = decodeOne(t, endpoint(), []byte(order(t, map[string]any{"orderType": "1", "status": "PAYING", "cardId": nil})))
	if c := ev.Card; c == nil || c.Phase != cardsv1alpha1.CardUnknown || c.ProviderStatus != "PAYING" || ev.CardID != OrderCardPrefix+orderNo {
		t.Errorf("create-card order with unknown status and no card: %+v %+v", ev.CardID, ev.Card)
	}
}
