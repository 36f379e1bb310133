package tevau

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/pan"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
)

const key = "tevau-test-signing-key"

var now = time.Date(2025, 7, 25, 3, 8, 11, 0, time.UTC)

func endpoint(o *cardsv1alpha1.TevauOptions) *endpointconfig.Resolved {
	return &endpointconfig.Resolved{
		Endpoint: &cardsv1alpha1.WebhookEndpoint{Spec: cardsv1alpha1.WebhookEndpointSpec{
			Provider: cardsv1alpha1.ProviderTevau, Tevau: o}},
		SigningKey:         []byte(key),
		TimestampTolerance: endpointconfig.DefaultTimestampTolerance,
	}
}

func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signed builds a request as Tevau would send it.
func signed(t testing.TB, ep *endpointconfig.Resolved, body []byte) *adapter.Request {
	t.Helper()
	h, b, err := Encode(ep, body, now)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return &adapter.Request{Header: h, Body: b, Received: now, Endpoint: ep}
}

func decode(t testing.TB, body string) *adapter.Result {
	t.Helper()
	ep := endpoint(nil)
	res, err := Adapter{}.Decode(signed(t, ep, []byte(body)))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return res
}

func ms(n int64) time.Time { return time.UnixMilli(n).UTC() }

func amt(v, cur string) *cardsv1alpha1.Money {
	return &cardsv1alpha1.Money{Value: cardsv1alpha1.Decimal(v), Currency: cur}
}

const (
	authorization = `{"orderId":"CT2506140813104252","cardId":"CIDV019485633101","eventType":"Authorization","status":1,
"transAmount":20,"transCurrency":"CNY","merchantData":{"mccCode":"6011","merchantId":"12345678","merchantName":"Tevau",
"merchantCountry":"HK"},"details":{"subOrderId":"S2506140813104249","principal":10,"fxFee":0.3,"authorizationFee":0.1,
"atmFee":0,"channelPrincipal":10,"channelAtmFee":0,"channelAuthorizationFee":0.2,"channelFxFee":0.6,"subStatus":5,
"subType":1,"remark":"Transaction Authorization","createTime":1749888799000,"createTimeStamp":1749888799163},
"channel":"ECOMMERCE"}`
	clearing = `{"orderId":"CT2506140802104234","cardId":"CIDV019485633101","eventType":"Clearing","status":1,
"transAmount":10,"transCurrency":"CNY","merchantData":{"mccCode":"6011","merchantId":"12345678","merchantName":"Tevau",
"merchantCountry":"HK"},"details":{"subOrderId":"S2506140804104243","principal":5,"refund":{"refund":0,"refundFee":0,
"channelRefund":0,"channelRefundFee":0},"fxFee":0.15,"authorizationFee":0.05,"atmFee":0,"channelPrincipal":5,
"channelAtmFee":0,"channelAuthorizationFee":0.1,"channelFxFee":0.3,"subStatus":1,"subType":16,
"remark":"Clearing Standard","createTime":1749888282000,"createTimeStamp":1749888281726},"channel":"ECOMMERCE"}`
	refund = `{"orderId":"CT2506140802104234","cardId":"CIDV019485633101","eventType":"Refund","status":2,
"transAmount":10,"transCurrency":"CNY","merchantData":{"mccCode":"6011","merchantId":"12345678","merchantName":"Tevau",
"merchantCountry":"HK"},"details":{"subOrderId":"S2506140809104246","principal":5,"refund":{"refund":5,"refundFee":0.2,
"channelRefund":5,"channelRefundFee":0.4},"fxFee":0.15,"authorizationFee":0.05,"atmFee":0,"channelPrincipal":5,
"channelAtmFee":0,"channelAuthorizationFee":0.1,"channelFxFee":0.3,"subStatus":1,"subType":9,"remark":"Refund Standard",
"createTime":1749888598000,"createTimeStamp":1749888597830},"channel":"ECOMMERCE"}`
	reversal = `{"orderId":"CT2506140649104189","cardId":"CIDV019485633101","eventType":"Reversal","status":1,
"transAmount":20,"transCurrency":"CNY","merchantData":{"mccCode":"6011","merchantId":"12345678","merchantName":"Tevau",
"merchantCountry":"HK"},"details":{"subOrderId":"S2506140656104192","principal":10,"reversal":{"reversal":4,
"reversalFee":0.16,"channelReversal":4,"channelReversalFee":0.32},"fxFee":0.12,"authorizationFee":0.04,"atmFee":0,
"channelPrincipal":10,"channelAtmFee":0,"channelAuthorizationFee":0.08,"channelFxFee":0.24,"subStatus":3,"subType":6,
"remark":"Reversal Partially Cancelled","createTime":1749884164000,"createTimeStamp":1749884164148},"channel":"ECOMMERCE"}`
	declined = `{"orderId":"CT2507010101000001","cardId":"CIDV019485633101","eventType":"Authorization","status":2,
"transAmount":"99.99","transCurrency":"USD","merchantData":{"mccCode":"5411","merchantName":"Grocer","merchantCountry":"us"},
"details":{"subOrderId":"S2507010101000002","principal":"99.99","subStatus":2,"subType":1,
"remark":"Transaction Declined: insufficient balance","createTimeStamp":1751331661000},"channel":"POS"}`
	kycPassed   = `{"eventType":"Kyc","userCode":"CB14837342","auditState":"1","auditRemark":"Authentication (KYC) has passed"}`
	kycRejected = `{"eventType":"Kyc","userCode":"CB14837342","auditState":"2","auditRemark":"Document unreadable"}`
	topUpBody   = `{"eventType":"CardTopup","cardId":"CIDV2504072011100869","rechargeAmount":"10","orderNo":"CD2507170545107911"}`
	threeDSOTP  = `{"authId":"a-1","cardId":"CIDV013855800204","cardPan":"4111111111111111","txnCurrency":"USD",
"txnAmount":"12.5","cardAcceptorLocationName":"Shop","otp":"482913","expireTimeStamp":1751270312990,
"createdStamp":1751270012990,"eventType":"3DS"}`
)

func TestDecodeEvents(t *testing.T) {
	merchant := &cardsv1alpha1.Merchant{Name: "Tevau", MCC: "6011", Country: "HK", ID: "12345678"}
	tests := []struct {
		name string
		body string
		want event.Event
	}{{
		name: "Kyc passed",
		body: kycPassed,
		want: event.Event{Type: "Kyc", HolderID: "CB14837342", OccurredAt: now,
			KYC: &event.KYC{State: cardsv1alpha1.KYCApproved, Reason: "Authentication (KYC) has passed"}},
	}, {
		name: "Kyc rejected",
		body: kycRejected,
		want: event.Event{Type: "Kyc", HolderID: "CB14837342", OccurredAt: now,
			KYC: &event.KYC{State: cardsv1alpha1.KYCRejected, Reason: "Document unreadable"}},
	}, {
		name: "Kyc undocumented state judged by remark",
		body: `{"eventType":"Kyc","userCode":"U1","auditState":"3","auditRemark":"Liveness check failed"}`,
		want: event.Event{Type: "Kyc", HolderID: "U1", OccurredAt: now,
			KYC: &event.KYC{State: cardsv1alpha1.KYCRejected, Reason: "Liveness check failed"}},
	}, {
		name: "CardCreate",
		body: `{"eventType":"CardCreate","cardId":"CIDV1","orderNo":"CC1"}`,
		want: event.Event{Type: "CardCreate", ID: "CC1", CardID: "CIDV1", OccurredAt: now,
			Card: &event.Card{Phase: cardsv1alpha1.CardActive, ProviderStatus: "CardCreate", Type: cardsv1alpha1.CardVirtual,
				References: map[string]string{"CardCreate.orderNo": "CC1"}}},
	}, {
		name: "CardFreeze",
		body: `{"eventType":"CardFreeze","cardId":"CIDV1","orderNo":"CF1"}`,
		want: event.Event{Type: "CardFreeze", ID: "CF1", CardID: "CIDV1", OccurredAt: now,
			Card: &event.Card{Phase: cardsv1alpha1.CardFrozen, ProviderStatus: "CardFreeze",
				References: map[string]string{"CardFreeze.orderNo": "CF1"}}},
	}, {
		name: "CardUnFreeze",
		body: `{"eventType":"CardUnFreeze","cardId":"CIDV1","orderNo":"CU1"}`,
		want: event.Event{Type: "CardUnFreeze", ID: "CU1", CardID: "CIDV1", OccurredAt: now,
			Card: &event.Card{Phase: cardsv1alpha1.CardActive, ProviderStatus: "CardUnFreeze",
				References: map[string]string{"CardUnFreeze.orderNo": "CU1"}}},
	}, {
		name: "CardClose sample",
		body: string(sample(t, "tevau-card-close.json")),
		want: event.Event{Type: "CardClose", ID: "CA2507250308114804", CardID: "CIDV012566246286", OccurredAt: now,
			Card: &event.Card{Phase: cardsv1alpha1.CardClosed, ProviderStatus: "CardClose",
				References: map[string]string{"CardClose.orderNo": "CA2507250308114804"},
				Amounts:    map[string]cardsv1alpha1.Money{"totalAmount": *amt("1.00", "USD")}}},
	}, {
		name: "CardClose with nothing left",
		body: `{"eventType":"CardClose","cardId":"CIDV1","orderNo":"CA1","totalAmount":"0"}`,
		want: event.Event{Type: "CardClose", ID: "CA1", CardID: "CIDV1", OccurredAt: now,
			Card: &event.Card{Phase: cardsv1alpha1.CardClosed, ProviderStatus: "CardClose",
				References: map[string]string{"CardClose.orderNo": "CA1"},
				Amounts:    map[string]cardsv1alpha1.Money{"totalAmount": *amt("0.00", "USD")}}},
	}, {
		name: "CardInProduction",
		body: `{"eventType":"CardInProduction","cardId":"CIDP1","orderNo":"L1"}`,
		want: event.Event{Type: "CardInProduction", ID: "L1", CardID: "CIDP1", OccurredAt: now,
			Card:      physical("CardInProduction", "L1"),
			Logistics: &event.Logistics{State: cardsv1alpha1.LogisticsInProduction}},
	}, {
		name: "CardShipped",
		body: `{"eventType":"CardShipped","cardId":"CIDP1","orderNo":"L2","logisticsCompany":"DHL","trackingNumber":"JD0123"}`,
		want: event.Event{Type: "CardShipped", ID: "L2", CardID: "CIDP1", OccurredAt: now,
			Card:      physical("CardShipped", "L2"),
			Logistics: &event.Logistics{State: cardsv1alpha1.LogisticsShipped, Carrier: "DHL", TrackingNumber: "JD0123"}},
	}, {
		name: "CardActive",
		body: `{"eventType":"CardActive","cardId":"CIDP1","orderNo":"L3"}`,
		want: event.Event{Type: "CardActive", ID: "L3", CardID: "CIDP1", OccurredAt: now,
			Card: &event.Card{Phase: cardsv1alpha1.CardActive, ProviderStatus: "CardActive", Type: cardsv1alpha1.CardPhysical,
				References: map[string]string{"CardActive.orderNo": "L3"}},
			Logistics: &event.Logistics{State: cardsv1alpha1.LogisticsActivated}},
	}, {
		name: "CardBind",
		body: `{"eventType":"CardBind","cardId":"CIDP1","orderNo":"L4"}`,
		want: event.Event{Type: "CardBind", ID: "L4", CardID: "CIDP1", OccurredAt: now,
			Card:      physical("CardBind", "L4"),
			Logistics: &event.Logistics{State: cardsv1alpha1.LogisticsBound}},
	}, {
		name: "CardTopup",
		body: topUpBody,
		want: event.Event{Type: "CardTopup", ID: "CD2507170545107911", CardID: "CIDV2504072011100869", OccurredAt: now,
			Transaction: &event.Transaction{ID: "CD2507170545107911", Type: cardsv1alpha1.TransactionTopUp,
				Phase: cardsv1alpha1.TransactionCompleted, ProviderStatus: "CardTopup", Direction: cardsv1alpha1.Credit,
				Amount: amt("10.00", "USD")}},
	}, {
		name: "3DS sample",
		body: string(sample(t, "tevau-3ds.json")),
		want: event.Event{Type: "3DS", ID: "0f9906e0-b5e1-4b98-a55b-4f197b0a964a", CardID: "CIDV013855800204",
			OccurredAt: ms(1751269892973),
			Card:       &event.Card{Number: &cardsv1alpha1.MaskedNumber{Last4: "0881"}},
			Challenge: &event.Challenge{ID: "0f9906e0-b5e1-4b98-a55b-4f197b0a964a", Purpose: "3ds", Method: "OOB",
				Amount: amt("4.00", "CNY"), Merchant: &cardsv1alpha1.Merchant{Name: "Tevau.io"},
				ExpiresAt: ms(1751270012990)}},
	}, {
		name: "3DS with an OTP and a full PAN",
		body: threeDSOTP,
		want: event.Event{Type: "3DS", ID: "a-1", CardID: "CIDV013855800204", OccurredAt: ms(1751270012990),
			Card: &event.Card{Number: &cardsv1alpha1.MaskedNumber{BIN: "411111", Last4: "1111"}},
			Challenge: &event.Challenge{ID: "a-1", Purpose: "3ds", Method: "OTP", Code: "482913",
				Amount: amt("12.50", "USD"), Merchant: &cardsv1alpha1.Merchant{Name: "Shop"},
				ExpiresAt: ms(1751270312990)}},
	}, {
		name: "Authorization",
		body: authorization,
		want: event.Event{Type: "Authorization", ID: "S2506140813104249", CardID: "CIDV019485633101",
			OccurredAt: ms(1749888799163),
			Transaction: &event.Transaction{ID: "CT2506140813104252", Type: cardsv1alpha1.TransactionAuthorization,
				Phase: cardsv1alpha1.TransactionPending, ProviderStatus: "status=1 subStatus=5 subType=1",
				Direction: cardsv1alpha1.Debit, Amount: amt("20.00", "CNY"), BillingAmount: amt("10.00", "USD"),
				Fee: amt("0.40", "USD"), Merchant: merchant, Channel: "ECOMMERCE",
				Description: "Transaction Authorization", OccurredAt: ms(1749888799163),
				Fees: fees3("0.30", "0.10", "0.00"), References: map[string]string{"Authorization.subOrderId": "S2506140813104249",
					"channelPrincipal": "10", "channelAtmFee": "0", "channelAuthorizationFee": "0.2", "channelFxFee": "0.6"}}},
	}, {
		name: "Authorization declined",
		body: declined,
		want: event.Event{Type: "Authorization", ID: "S2507010101000002", CardID: "CIDV019485633101",
			OccurredAt: ms(1751331661000),
			Transaction: &event.Transaction{ID: "CT2507010101000001", Type: cardsv1alpha1.TransactionAuthorization,
				Phase: cardsv1alpha1.TransactionDeclined, ProviderStatus: "status=2 subStatus=2 subType=1",
				Direction: cardsv1alpha1.Debit, Amount: amt("99.99", "USD"), BillingAmount: amt("99.99", "USD"),
				Merchant: &cardsv1alpha1.Merchant{Name: "Grocer", MCC: "5411", Country: "US"}, Channel: "POS",
				Description:   "Transaction Declined: insufficient balance",
				FailureReason: "Transaction Declined: insufficient balance", OccurredAt: ms(1751331661000),
				References: map[string]string{"Authorization.subOrderId": "S2507010101000002"}}},
	}, {
		name: "Clearing",
		body: clearing,
		want: event.Event{Type: "Clearing", ID: "S2506140804104243", CardID: "CIDV019485633101",
			OccurredAt: ms(1749888281726),
			Transaction: &event.Transaction{ID: "CT2506140802104234", Type: cardsv1alpha1.TransactionClearing,
				Phase: cardsv1alpha1.TransactionCompleted, ProviderStatus: "status=1 subStatus=1 subType=16",
				Direction: cardsv1alpha1.Debit, Amount: amt("10.00", "CNY"), BillingAmount: amt("5.00", "USD"),
				Fee: amt("0.20", "USD"), Merchant: merchant, Channel: "ECOMMERCE", Description: "Clearing Standard",
				OccurredAt: ms(1749888281726), Fees: fees3("0.15", "0.05", "0.00"),
				References: map[string]string{"Clearing.subOrderId": "S2506140804104243", "channelPrincipal": "5",
					"channelAtmFee": "0", "channelAuthorizationFee": "0.1", "channelFxFee": "0.3"}}},
	}, {
		name: "Refund",
		body: refund,
		want: event.Event{Type: "Refund", ID: "S2506140809104246", CardID: "CIDV019485633101",
			OccurredAt: ms(1749888597830),
			Transaction: &event.Transaction{ID: "S2506140809104246", Type: cardsv1alpha1.TransactionRefund,
				Phase: cardsv1alpha1.TransactionCompleted, ProviderStatus: "status=2 subStatus=1 subType=9",
				Direction: cardsv1alpha1.Credit, Amount: amt("5.00", "USD"), Merchant: merchant, Channel: "ECOMMERCE",
				Description: "Refund Standard", OriginalTransactionID: "CT2506140802104234",
				OccurredAt: ms(1749888597830),
				References: map[string]string{"refundFee": "0.2", "channelRefund": "5", "channelRefundFee": "0.4"}}},
	}, {
		name: "Reversal",
		body: reversal,
		want: event.Event{Type: "Reversal", ID: "S2506140656104192", CardID: "CIDV019485633101",
			OccurredAt: ms(1749884164148),
			Transaction: &event.Transaction{ID: "S2506140656104192", Type: cardsv1alpha1.TransactionReversal,
				Phase: cardsv1alpha1.TransactionCompleted, ProviderStatus: "status=1 subStatus=3 subType=6",
				Direction: cardsv1alpha1.Credit, Amount: amt("4.00", "USD"), Merchant: merchant, Channel: "ECOMMERCE",
				Description: "Reversal Partially Cancelled", OriginalTransactionID: "CT2506140649104189",
				OccurredAt: ms(1749884164148),
				References: map[string]string{"reversalFee": "0.16", "channelReversal": "4", "channelReversalFee": "0.32"}}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := decode(t, tc.body)
			if res.Unknown || res.EventType != tc.want.Type || string(res.Ack.Body) != `{"code":"200","msg":"Received successfully"}` ||
				res.Ack.ContentType != "application/json" {
				t.Fatalf("result = %+v", res)
			}
			if len(res.Events) != 1 {
				t.Fatalf("events = %d, want 1", len(res.Events))
			}
			got, want := dump(res.Events[0]), dump(tc.want)
			if got != want {
				t.Errorf("event\n got: %s\nwant: %s", got, want)
			}
			if res.Events[0].Challenge != nil && res.Events[0].Challenge.Code != tc.want.Challenge.Code {
				t.Errorf("challenge code = %q, want %q", res.Events[0].Challenge.Code, tc.want.Challenge.Code)
			}
		})
	}
}

// physical is the card fact of a logistics callback.
func physical(name, orderNo string) *event.Card {
	return &event.Card{Type: cardsv1alpha1.CardPhysical, References: map[string]string{name + ".orderNo": orderNo}}
}

// fees3 is Tevau's fee breakdown (fxFee, authorizationFee, atmFee) in USD.
func fees3(fx, auth, atm string) []cardsv1alpha1.FeeComponent {
	return []cardsv1alpha1.FeeComponent{{Name: "fxFee", Amount: *amt(fx, "USD")},
		{Name: "authorizationFee", Amount: *amt(auth, "USD")}, {Name: "atmFee", Amount: *amt(atm, "USD")}}
}

// dump renders an event and all its facts (%+v alone prints only pointers).
func dump(e event.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "type=%s id=%s at=%s card=%s holder=%s", e.Type, e.ID, e.OccurredAt.UTC().Format(time.RFC3339Nano), e.CardID, e.HolderID)
	if c := e.Card; c != nil {
		fmt.Fprintf(&b, " Card{phase=%s status=%s reason=%s type=%s}", c.Phase, c.ProviderStatus, c.Reason, c.Type)
		if c.Number != nil {
			fmt.Fprintf(&b, " Number%+v", *c.Number)
		}
		if c.Expiry != nil {
			fmt.Fprintf(&b, " Expiry%+v", *c.Expiry)
		}
		if c.References != nil || c.Amounts != nil {
			fmt.Fprintf(&b, " refs=%v amounts=%v", c.References, c.Amounts)
		}
	}
	if t := e.Transaction; t != nil {
		fmt.Fprintf(&b, " Transaction{id=%s type=%s phase=%s status=%q dir=%s amount=%v billing=%v fee=%v merchant=%v channel=%s desc=%q fail=%q orig=%s at=%s}",
			t.ID, t.Type, t.Phase, t.ProviderStatus, t.Direction, deref(t.Amount), deref(t.BillingAmount), deref(t.Fee),
			derefM(t.Merchant), t.Channel, t.Description, t.FailureReason, t.OriginalTransactionID, t.OccurredAt.UTC().Format(time.RFC3339Nano))
		if t.Fees != nil || t.References != nil || t.ExchangeRate != "" {
			fmt.Fprintf(&b, " fees=%v refs=%v rate=%s", t.Fees, t.References, t.ExchangeRate)
		}
	}
	if c := e.Challenge; c != nil {
		fmt.Fprintf(&b, " Challenge{id=%s purpose=%s method=%s status=%s amount=%v merchant=%v expires=%s}",
			c.ID, c.Purpose, c.Method, c.Status, deref(c.Amount), derefM(c.Merchant), c.ExpiresAt.UTC().Format(time.RFC3339Nano))
	}
	if k := e.KYC; k != nil {
		fmt.Fprintf(&b, " KYC%+v", *k)
	}
	if l := e.Logistics; l != nil {
		fmt.Fprintf(&b, " Logistics%+v", *l)
	}
	if e.Balance != nil {
		fmt.Fprintf(&b, " Balance{%s %s}", e.Balance.Available.Value, e.Balance.Available.Currency)
	}
	if e.Authorization != nil {
		b.WriteString(" unexpected authorization")
	}
	return b.String()
}

func deref(m *cardsv1alpha1.Money) string {
	if m == nil {
		return "<nil>"
	}
	return string(m.Value) + " " + m.Currency
}

func derefM(m *cardsv1alpha1.Merchant) string {
	if m == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%+v", *m)
}

func TestNoFactEvents(t *testing.T) {
	res := decode(t, `{"eventType":"BusinessDeposit","amount":"1000","currency":"USD","orderNo":"BD1"}`)
	if res.Unknown || len(res.Events) != 0 || res.EventType != "BusinessDeposit" || res.Ack.Status != http.StatusOK {
		t.Errorf("BusinessDeposit: %+v", res)
	}
	res = decode(t, `{"eventType":"TokenNotification","cardId":"CIDV1"}`)
	if !res.Unknown || len(res.Events) != 0 || res.EventType != "TokenNotification" || res.Ack.Status != http.StatusOK {
		t.Errorf("unknown: %+v", res)
	}
}

func TestReplayKey(t *testing.T) {
	ep := endpoint(nil)
	req := signed(t, ep, []byte(kycPassed))
	res, err := Adapter{}.Decode(req)
	if err != nil {
		t.Fatal(err)
	}
	if want := "cardplane:" + req.Header.Get(HeaderNonce); res.DeliveryID != want || len(req.Header.Get(HeaderNonce)) != 32 {
		t.Errorf("DeliveryID = %q, want %q", res.DeliveryID, want)
	}
}

func TestMalformed(t *testing.T) {
	for name, body := range map[string]string{
		"no eventType":            `{"cardId":"CIDV1"}`,
		"Kyc without userCode":    `{"eventType":"Kyc","auditState":"1"}`,
		"card event without card": `{"eventType":"CardFreeze","orderNo":"X"}`,
		"topup without amount":    `{"eventType":"CardTopup","cardId":"C","orderNo":"O"}`,
		"topup without orderNo":   `{"eventType":"CardTopup","cardId":"C","rechargeAmount":"1"}`,
		"topup bad amount":        `{"eventType":"CardTopup","cardId":"C","orderNo":"O","rechargeAmount":"ten"}`,
		"close bad amount":        `{"eventType":"CardClose","cardId":"C","orderNo":"O","totalAmount":"1e3"}`,
		"3DS without authId":      `{"eventType":"3DS","cardId":"C"}`,
		"3DS bad currency":        `{"eventType":"3DS","cardId":"C","authId":"A","txnAmount":"1","txnCurrency":"dollars"}`,
		"3DS bad expiry":          `{"eventType":"3DS","cardId":"C","authId":"A","expireTimeStamp":"soon"}`,
		"txn without orderId":     `{"eventType":"Clearing","cardId":"C","transAmount":1,"transCurrency":"USD"}`,
		"txn without currency":    `{"eventType":"Authorization","cardId":"C","orderId":"O","transAmount":1}`,
		"txn bad principal":       `{"eventType":"Clearing","cardId":"C","orderId":"O","transAmount":1,"transCurrency":"USD","details":{"principal":"x"}}`,
		"txn bad fee":             `{"eventType":"Clearing","cardId":"C","orderId":"O","transAmount":1,"transCurrency":"USD","details":{"fxFee":true}}`,
		"refund without amount":   `{"eventType":"Refund","cardId":"C","orderId":"O","details":{"subOrderId":"S"}}`,
		"txn bad time":            `{"eventType":"Refund","cardId":"C","orderId":"O","details":{"principal":1,"createTimeStamp":"yesterday"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Adapter{}.Decode(signed(t, endpoint(nil), []byte(body)))
			r, ok := adapter.AsRejection(err)
			if !ok || r.Reason != cardsv1alpha1.ReasonMalformed || r.Message == "" {
				t.Fatalf("err = %v, want Malformed", err)
			}
		})
	}
	// A body that is no JSON object is refused before anything else.
	req := signed(t, endpoint(nil), []byte(kycPassed))
	req.Body = []byte(`[1,2]`)
	if r, ok := adapter.AsRejection(mustErr(Adapter{}.Decode(req))); !ok || r.Reason != cardsv1alpha1.ReasonMalformed {
		t.Errorf("array body: %v", r)
	}
}

func mustErr(_ *adapter.Result, err error) error { return err }

func TestVerificationFailures(t *testing.T) {
	ep := endpoint(nil)
	body := []byte(kycPassed)
	cases := map[string]struct {
		mutate func(r *adapter.Request)
		reason string
	}{
		"missing sign":      {func(r *adapter.Request) { r.Header.Del(HeaderSign) }, cardsv1alpha1.ReasonInvalidSignature},
		"missing timestamp": {func(r *adapter.Request) { r.Header.Del(HeaderTimestamp) }, cardsv1alpha1.ReasonInvalidSignature},
		"sign not hex":      {func(r *adapter.Request) { r.Header.Set(HeaderSign, strings.Repeat("z", 64)) }, cardsv1alpha1.ReasonInvalidSignature},
		"sign too short":    {func(r *adapter.Request) { r.Header.Set(HeaderSign, r.Header.Get(HeaderSign)[:62]) }, cardsv1alpha1.ReasonInvalidSignature},
		"wrong key": {func(r *adapter.Request) {
			e := *ep
			e.SigningKey = []byte("another-key")
			r.Endpoint = &e
		}, cardsv1alpha1.ReasonInvalidSignature},
		"no key": {func(r *adapter.Request) {
			e := *ep
			e.SigningKey = nil
			r.Endpoint = &e
		}, cardsv1alpha1.ReasonInvalidSignature},
		"no endpoint":     {func(r *adapter.Request) { r.Endpoint = nil }, cardsv1alpha1.ReasonInvalidSignature},
		"tampered body":   {func(r *adapter.Request) { r.Body = []byte(strings.Replace(string(r.Body), `"1"`, `"2"`, 1)) }, cardsv1alpha1.ReasonInvalidSignature},
		"added field":     {func(r *adapter.Request) { r.Body = []byte(strings.Replace(string(r.Body), `{`, `{"x":"y",`, 1)) }, cardsv1alpha1.ReasonInvalidSignature},
		"tampered nonce":  {func(r *adapter.Request) { r.Header.Set(HeaderNonce, "OTHER") }, cardsv1alpha1.ReasonInvalidSignature},
		"tampered appId":  {func(r *adapter.Request) { r.Header.Set(HeaderAppID, "other") }, cardsv1alpha1.ReasonInvalidSignature},
		"stale timestamp": {func(r *adapter.Request) { r.Received = now.Add(6 * time.Minute) }, cardsv1alpha1.ReasonStaleTimestamp},
		"future timestamp": {func(r *adapter.Request) { r.Received = now.Add(-6 * time.Minute) },
			cardsv1alpha1.ReasonStaleTimestamp},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req := signed(t, ep, body)
			tc.mutate(req)
			_, err := Adapter{}.Decode(req)
			r, ok := adapter.AsRejection(err)
			if !ok || r.Reason != tc.reason {
				t.Fatalf("err = %v, want %s", err, tc.reason)
			}
		})
	}
	// The excluded headers and the hex case do not matter.
	req := signed(t, ep, body)
	req.Header.Set(HeaderAPIKey, "changed")
	req.Header.Set(HeaderVersions, "v9")
	req.Header.Set(HeaderSign, strings.ToUpper(req.Header.Get(HeaderSign)))
	if _, err := (Adapter{}).Decode(req); err != nil {
		t.Errorf("upper-case sign with other api key/versions: %v", err)
	}
}

func TestSignedString(t *testing.T) {
	body, err := adapter.Object([]byte(`{"eventType":"Clearing","transAmount":10.50,"empty":"","none":null,"obj":{},
"details":{"z":1,"a":"x<y","n":{"b":[1,"2"],"a":null}},"sign":"ignored","versions":"v1","flag":true,"name":" spaced "}`))
	if err != nil {
		t.Fatal(err)
	}
	hdr := map[string]string{HeaderAppID: "APP", HeaderTimestamp: "20250901150426", HeaderNonce: "N1"}
	got, err := signedString(opts{includeHeaders: true}, body, hdr)
	if err != nil {
		t.Fatal(err)
	}
	want := `appId=APP&details={"a":"x<y","n":{"a":null,"b":[1,"2"]},"z":1}&eventType=Clearing&flag=true&name= spaced ` +
		`&nonce=N1&timestamp=20250901150426&transAmount=10.50`
	if got != want {
		t.Errorf("signed string\n got: %s\nwant: %s", got, want)
	}
	got, _ = signedString(opts{includeHeaders: false}, body, hdr)
	if strings.Contains(got, "appId") || strings.Contains(got, "nonce") || strings.Contains(got, "timestamp") {
		t.Errorf("includeHeaders=false still signs headers: %s", got)
	}

	// Pin both algorithms against an independent computation over the documented sample.
	ep := endpoint(nil)
	req := signed(t, ep, sample(t, "tevau-card-close.json"))
	s := "appId=cardplane&cardId=CIDV012566246286&eventType=CardClose&nonce=" + req.Header.Get(HeaderNonce) +
		"&orderNo=CA2507250308114804&timestamp=20250725030811&totalAmount=1"
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(s))
	if got := req.Header.Get(HeaderSign); got != hex.EncodeToString(mac.Sum(nil)) {
		t.Errorf("HMACSHA256 sign = %s over unexpected string", got)
	}
	ep = endpoint(&cardsv1alpha1.TevauOptions{Algorithm: AlgorithmSHA256})
	req = signed(t, ep, sample(t, "tevau-card-close.json"))
	s = "appId=cardplane&cardId=CIDV012566246286&eventType=CardClose&nonce=" + req.Header.Get(HeaderNonce) +
		"&orderNo=CA2507250308114804&timestamp=20250725030811&totalAmount=1"
	sum := sha256.Sum256([]byte(s + "&key=" + key))
	if got := req.Header.Get(HeaderSign); got != hex.EncodeToString(sum[:]) {
		t.Errorf("SHA256 sign = %s over unexpected string", got)
	}
}

func TestOptionVariants(t *testing.T) {
	f := false
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Skip("no tzdata")
	}
	variants := map[string]struct {
		opts *cardsv1alpha1.TevauOptions
		ts   string // the timestamp header Encode must produce
	}{
		"defaults":           {nil, "20250725030811"},
		"explicit HMAC":      {&cardsv1alpha1.TevauOptions{Algorithm: AlgorithmHMACSHA256, TimestampFormat: TimestampAuto}, "20250725030811"},
		"SHA256":             {&cardsv1alpha1.TevauOptions{Algorithm: AlgorithmSHA256}, "20250725030811"},
		"no headers":         {&cardsv1alpha1.TevauOptions{IncludeHeaders: &f}, "20250725030811"},
		"epoch millis":       {&cardsv1alpha1.TevauOptions{TimestampFormat: TimestampEpochMillis}, fmt.Sprint(now.UnixMilli())},
		"epoch seconds":      {&cardsv1alpha1.TevauOptions{TimestampFormat: TimestampEpochSeconds}, fmt.Sprint(now.Unix())},
		"compact in a zone":  {&cardsv1alpha1.TevauOptions{TimestampFormat: TimestampCompact, TimeZone: "Asia/Shanghai"}, now.In(shanghai).Format("20060102150405")},
		"auto in a zone":     {&cardsv1alpha1.TevauOptions{TimeZone: "Asia/Shanghai"}, "20250725110811"},
		"SHA256, no headers": {&cardsv1alpha1.TevauOptions{Algorithm: AlgorithmSHA256, IncludeHeaders: &f}, "20250725030811"},
	}
	for name, v := range variants {
		t.Run(name, func(t *testing.T) {
			ep := endpoint(v.opts)
			req := signed(t, ep, []byte(clearing))
			if got := req.Header.Get(HeaderTimestamp); got != v.ts {
				t.Errorf("timestamp = %s, want %s", got, v.ts)
			}
			res, err := Adapter{}.Decode(req)
			if err != nil || len(res.Events) != 1 || res.Events[0].Transaction == nil {
				t.Fatalf("round trip: %v %+v", err, res)
			}
			// Under every other variant the same request passes only if it signs alike and reads the
			// timestamp header as the same time.
			for other, o := range variants {
				r2 := *req
				r2.Endpoint = endpoint(o.opts)
				_, err := Adapter{}.Decode(&r2)
				if want := accepts(t, o.opts, v.opts, req.Header.Get(HeaderTimestamp)); (err == nil) != want {
					t.Errorf("under %s: err = %v, want accepted = %v", other, err, want)
				}
			}
		})
	}
	// Auto tells the formats apart by length; explicit formats refuse the others.
	for _, tc := range []struct {
		format, ts string
		ok         bool
	}{
		{TimestampAuto, "20250725030811", true}, {TimestampAuto, fmt.Sprint(now.UnixMilli()), true},
		{TimestampAuto, fmt.Sprint(now.Unix()), true}, {TimestampAuto, "202507250308", false},
		{TimestampAuto, "2025-07-25T03:08:11Z", false}, {TimestampCompact, fmt.Sprint(now.Unix()), false},
		{TimestampCompact, "20251325030811", false}, {TimestampEpochSeconds, fmt.Sprint(now.Unix()), true},
		{TimestampEpochMillis, fmt.Sprint(now.UnixMilli()), true}, {TimestampEpochMillis, "99999999999999999999", false},
	} {
		o := opts{format: tc.format, loc: time.UTC}
		got, err := o.parseTimestamp(tc.ts)
		if (err == nil) != tc.ok || tc.ok && !got.Equal(now) {
			t.Errorf("%s %q: %v %v", tc.format, tc.ts, got, err)
		}
	}
	// A wrong option is refused with a message naming it.
	for _, o := range []*cardsv1alpha1.TevauOptions{{TimeZone: "Mars/Base"}, {Algorithm: "MD5"}, {TimestampFormat: "ISO"}} {
		req := signed(t, endpoint(nil), []byte(kycPassed))
		req.Endpoint = endpoint(o)
		_, err := Adapter{}.Decode(req)
		if r, ok := adapter.AsRejection(err); !ok || !strings.Contains(r.Message, "tevau.") {
			t.Errorf("%+v: %v", *o, err)
		}
	}
}

// accepts says whether a request signed under `signer` passes under `verifier`: the algorithm and the header
// choice must agree (the timestamp format only changes how the header is read), and the header must read as now.
func accepts(t *testing.T, verifier, signer *cardsv1alpha1.TevauOptions, ts string) bool {
	t.Helper()
	alg := func(o *cardsv1alpha1.TevauOptions) string {
		if o == nil || o.Algorithm == "" {
			return AlgorithmHMACSHA256
		}
		return o.Algorithm
	}
	hdr := func(o *cardsv1alpha1.TevauOptions) bool {
		return o == nil || o.IncludeHeaders == nil || *o.IncludeHeaders
	}
	if alg(verifier) != alg(signer) || hdr(verifier) != hdr(signer) {
		return false
	}
	o, err := options(endpoint(verifier))
	if err != nil {
		t.Fatal(err)
	}
	got, err := o.parseTimestamp(ts)
	return err == nil && got.Equal(now)
}

func TestRoundTripAllPayloads(t *testing.T) {
	for _, body := range payloads(t) {
		for _, o := range []*cardsv1alpha1.TevauOptions{nil, {Algorithm: AlgorithmSHA256, TimestampFormat: TimestampEpochMillis}} {
			ep := endpoint(o)
			req := signed(t, ep, body)
			if string(req.Body) != string(body) {
				t.Fatalf("Encode changed the body")
			}
			if _, err := (Adapter{}).Decode(req); err != nil {
				t.Errorf("%s: %v", body, err)
			}
		}
	}
}

var cvc = regexp.MustCompile(`\b739\b`)

func TestNoSecretsInEvents(t *testing.T) {
	bodies := append(payloads(t),
		[]byte(`{"eventType":"CardCreate","cardId":"CIDV9","orderNo":"O9","cardNo":"5555 5555 5555 4444","cvv":"739"}`),
		[]byte(`{"eventType":"CardActive","cardId":"CIDP9","orderNo":"O9","cardNumber":"4000056655665556","cvc":"739"}`),
		[]byte(`{"eventType":"Clearing","cardId":"CIDV9","orderId":"O9","transAmount":1,"transCurrency":"USD","cardPan":"4242424242424242","cvv2":"739"}`),
		[]byte(`{"eventType":"Refund","cardId":"CIDV9","orderId":"O9","merchantData":{"merchantName":"Shop 4111-1111-1111-1111"},
"details":{"principal":1,"remark":"back to 4111 1111 1111 1111"}}`),
		[]byte(`{"eventType":"Kyc","userCode":"U9","auditState":"2","auditRemark":"card 5555555555554444 is not yours"}`))
	for _, body := range bodies {
		res, err := Adapter{}.Decode(signed(t, endpoint(nil), body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		for _, ev := range res.Events {
			js, _ := json.Marshal(ev)
			for _, out := range []string{pointerAddr.ReplaceAllString(fmt.Sprintf("%+v", ev), "0x…"), dump(ev), string(js)} {
				if found := pan.Find(scrubIDs(ev, out)); len(found) > 0 {
					t.Errorf("full PAN %v in %s", found, out)
				}
				if cvc.MatchString(out) {
					t.Errorf("CVC in %s", out)
				}
				if strings.Contains(out, "482913") && out != dump(ev) {
					t.Errorf("OTP outside Challenge.Code: %s", out)
				}
			}
			if ev.Card != nil && ev.Card.Number != nil && ev.Card.Number.Last4 == "" {
				t.Errorf("card number not reduced: %+v", *ev.Card.Number)
			}
		}
	}
}

// scrubIDs blanks opaque IDs (Tevau's contain long digit runs such as CA2507250308114804, and merchant IDs are
// digit strings, which pan.Find may take for card numbers) before a leak scan.
func scrubIDs(ev event.Event, out string) string {
	ids := []string{ev.ID, ev.CardID, ev.HolderID}
	if t := ev.Transaction; t != nil {
		ids = append(ids, t.ID, t.OriginalTransactionID)
		if t.Merchant != nil {
			ids = append(ids, t.Merchant.ID) // an acquirer's merchant ID, often 15 digits
		}
	}
	if c := ev.Challenge; c != nil {
		ids = append(ids, c.ID)
	}
	// Longest first, so a short ID (cardId "C") cannot break a longer one before it is blanked.
	sort.Slice(ids, func(i, j int) bool { return len(ids[i]) > len(ids[j]) })
	for _, id := range ids {
		if id != "" {
			out = strings.ReplaceAll(out, id, "<id>")
		}
	}
	return out
}

// payloads are the samples and the table bodies, also the fuzz seeds.
func payloads(t testing.TB) [][]byte {
	out := [][]byte{sample(t, "tevau-3ds.json"), sample(t, "tevau-card-close.json")}
	for _, fc := range fidelityCases {
		out = append(out, sample(t, fc.file))
	}
	for _, s := range []string{authorization, clearing, refund, reversal, declined, kycPassed, kycRejected, topUpBody, threeDSOTP,
		`{"eventType":"CardCreate","cardId":"CIDV1","orderNo":"CC1"}`,
		`{"eventType":"CardFreeze","cardId":"CIDV1","orderNo":"CF1"}`,
		`{"eventType":"CardUnFreeze","cardId":"CIDV1","orderNo":"CU1"}`,
		`{"eventType":"CardInProduction","cardId":"CIDP1","orderNo":"L1"}`,
		`{"eventType":"CardShipped","cardId":"CIDP1","orderNo":"L2","logisticsCompany":"DHL","trackingNumber":"JD0123"}`,
		`{"eventType":"CardActive","cardId":"CIDP1","orderNo":"L3"}`,
		`{"eventType":"CardBind","cardId":"CIDP1","orderNo":"L4"}`,
		`{"eventType":"BusinessDeposit","amount":"1000","currency":"USD","orderNo":"BD1"}`,
	} {
		out = append(out, []byte(s))
	}
	return out
}

func FuzzDecode(f *testing.F) {
	for _, p := range payloads(f) {
		f.Add(p)
	}
	f.Add([]byte(`{"eventType":"Refund","cardId":"C","orderId":"O","details":{"refund":{"refund":"-1"}}}`))
	f.Add([]byte(`{"eventType":"3DS","cardId":"C","authId":"A","expireTimeStamp":99999999999999999999}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ep := endpoint(nil)
		// Unsigned: always refused with a Rejection.
		unsigned := &adapter.Request{Header: http.Header{HeaderSign: {strings.Repeat("a", 64)}, HeaderTimestamp: {"20250725030811"}},
			Body: body, Received: now, Endpoint: ep}
		if _, err := (Adapter{}).Decode(unsigned); err == nil {
			t.Fatal("unsigned body accepted")
		} else if _, ok := adapter.AsRejection(err); !ok {
			t.Fatalf("error is no Rejection: %v", err)
		}
		// Signed: decoded or refused with a Rejection, never a panic.
		h, b, err := Encode(ep, body, now)
		if err != nil {
			return
		}
		res, err := Adapter{}.Decode(&adapter.Request{Header: h, Body: b, Received: now, Endpoint: ep})
		if err != nil {
			if _, ok := adapter.AsRejection(err); !ok {
				t.Fatalf("error is no Rejection: %v", err)
			}
			return
		}
		if res.Ack.Status != http.StatusOK {
			t.Fatalf("no ack: %+v", res)
		}
		for _, ev := range res.Events {
			if found := pan.Find(scrubIDs(ev, dump(ev))); len(found) > 0 {
				t.Fatalf("full PAN in %s", dump(ev))
			}
		}
	})
}

// pointerAddr matches the addresses %+v prints for pointers: they are random hex and could contain a secret's
// digits by chance, so the leak checks leave them out.
var pointerAddr = regexp.MustCompile(`0x[0-9a-f]+`)
