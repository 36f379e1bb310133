package upay

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/pan"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
)

const signingKey = "upay-test-secret-3f9a"

// t0 is the envelope time of the first push (2025-11-22 08:00:00 UTC, the card-status sample's timestamp).
const t0 int64 = 1763798400000

// now is when the receiver read the callbacks, 90 s after t0.
var now = time.UnixMilli(t0 + 90_000).UTC()

// Luhn-valid full card numbers, so pan.Find would report them if they leaked.
const (
	pan1 = "5326120000001232"
	pan2 = "4288520000007650"
	pan3 = "5229810000007894"
	cvc  = "846"
)

func endpoint(o *cardsv1alpha1.UPayOptions) *endpointconfig.Resolved {
	return &endpointconfig.Resolved{
		Endpoint: &cardsv1alpha1.WebhookEndpoint{Spec: cardsv1alpha1.WebhookEndpointSpec{
			Provider: cardsv1alpha1.ProviderUPay, UPay: o}},
		SigningKey:         []byte(signingKey),
		TimestampTolerance: endpointconfig.DefaultTimestampTolerance,
	}
}

var hexOption = &cardsv1alpha1.UPayOptions{SignatureEncoding: "Hex"}

// specMAC is the MAC the UPay docs define, computed here without the adapter's code:
// HMAC-SHA256(key, event + "|" + X-UPA-TIMESTAMP + "|" + body).
func specMAC(key, name, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(name))
	m.Write([]byte("|"))
	m.Write([]byte(ts))
	m.Write([]byte("|"))
	m.Write(body)
	return m.Sum(nil)
}

func eventName(t testing.TB, body []byte) string {
	t.Helper()
	var env struct {
		Event string `json:"event"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("test payload is not JSON: %v\n%s", err, body)
	}
	return env.Event
}

// signedAt builds a callback as UPay sends it, signed with key at ts, in the endpoint's signature encoding.
func signedAt(t testing.TB, ep *endpointconfig.Resolved, key string, body []byte, ts time.Time) *adapter.Request {
	t.Helper()
	tss := strconv.FormatInt(ts.UnixMilli(), 10)
	mac := specMAC(key, eventName(t, body), tss, body)
	sig := base64.StdEncoding.EncodeToString(mac)
	if o := ep.Endpoint.Spec.UPay; o != nil && o.SignatureEncoding == "Hex" {
		sig = hex.EncodeToString(mac)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-UPA-TIMESTAMP", tss)
	h.Set("X-UPA-SIGN", sig)
	h.Set("X-UPA-REQUESTID", "req-"+tss)
	return &adapter.Request{Header: h, Body: body, Received: now, Endpoint: ep}
}

func signed(t testing.TB, body []byte) *adapter.Request {
	return signedAt(t, endpoint(nil), signingKey, body, now.Add(-2*time.Second))
}

func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// push is a UPay envelope around detail, pushed offset milliseconds after t0.
func push(name, orderNo string, offset int64, detail string) string {
	return fmt.Sprintf(`{"event":%q,"trace":"tr-%s","orderNo":%q,"timestamp":%d,"detail":%s}`,
		name, orderNo, orderNo, t0+offset, detail)
}

func at(offset int64) time.Time { return time.UnixMilli(t0 + offset).UTC() }

func amt(v, cur string) *cardsv1alpha1.Money {
	return &cardsv1alpha1.Money{Value: cardsv1alpha1.Decimal(v), Currency: cur}
}

func masked(bin, last4 string) *cardsv1alpha1.MaskedNumber {
	return &cardsv1alpha1.MaskedNumber{BIN: bin, Last4: last4}
}

// card1 is the card facts of a payload carrying pan1: its number, reduced.
var card1 = &event.Card{Number: &cardsv1alpha1.MaskedNumber{BIN: "532612", Last4: "1232"}}

// txRefs are the references of a transaction pushed with push(…, orderNo, …) whose detail repeats orderNo, plus
// extra key/value pairs.
func txRefs(orderNo string, extra ...string) map[string]string {
	m := map[string]string{"trace": "tr-" + orderNo, "orderNo": orderNo}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

type decodeCase struct {
	name string
	body string
	want event.Event
	// secret is the one-time code (or 3DS link) the payload carries; it may appear only in Challenge.Code.
	secret string
}

// cases has one realistic payload per UPay event type (several where the mapping branches).
func cases(t testing.TB) []decodeCase {
	t.Helper()
	cs := []decodeCase{
		{
			name: "CC_CONSUME cross-currency processing",
			body: push("CC_CONSUME", "ON-C-1001", 1_000, `{"cardId":"UC10001","cardNumber":"`+pan1+`","orderNo":"ON-C-1001",
"customerNo":"CUST77","type":2,"status":3,"amount":23.45,"direction":2,"merchantName":"LAWSON SHIBUYA","currency":"USD",
"transactionAt":1763798340000,"transactionId":"TX-1001","originalAmount":3620,"originalCurrency":"JPY","fee":"0.35",
"merchantMcc":"5411","merchantCategory":"Grocery Stores","merchantCountry":"JPN"}`),
			want: event.Event{Type: "CC_CONSUME", ID: "ON-C-1001", OccurredAt: at(1_000), CardID: "UC10001", HolderID: "CUST77",
				Card: card1,
				Transaction: &event.Transaction{ID: "TX-1001", Type: cardsv1alpha1.TransactionPurchase,
					Phase: cardsv1alpha1.TransactionPending, ProviderStatus: "3", Direction: cardsv1alpha1.Debit,
					Amount: amt("3620", "JPY"), BillingAmount: amt("23.45", "USD"), Fee: amt("0.35", "USD"),
					Merchant:    &cardsv1alpha1.Merchant{Name: "LAWSON SHIBUYA", MCC: "5411", Country: "JPN"},
					Description: "Grocery Stores", References: txRefs("ON-C-1001"), OccurredAt: at(-60_000)}},
		},
		{
			name: "CC_CONSUME posted keeps every decimal",
			body: push("CC_CONSUME", "ON-C-1002", 2_000, `{"cardId":"UC10001","cardNumber":"`+pan1+`","orderNo":"ON-C-1002",
"customerNo":"CUST77","type":"2","status":"4","amount":"12.340","direction":"2","merchantName":"OPENAI *CHATGPT",
"currency":"USD","transactionAt":"1763798340000","transactionId":"TX-1002","merchantMcc":"5734","merchantCountry":"USA"}`),
			want: event.Event{Type: "CC_CONSUME", ID: "ON-C-1002", OccurredAt: at(2_000), CardID: "UC10001", HolderID: "CUST77",
				Card: card1,
				Transaction: &event.Transaction{ID: "TX-1002", Type: cardsv1alpha1.TransactionPurchase,
					Phase: cardsv1alpha1.TransactionCompleted, ProviderStatus: "4", Direction: cardsv1alpha1.Debit,
					Amount:     amt("12.340", "USD"),
					Merchant:   &cardsv1alpha1.Merchant{Name: "OPENAI *CHATGPT", MCC: "5734", Country: "USA"},
					References: txRefs("ON-C-1002"), OccurredAt: at(-60_000)}},
		},
		{
			name: "CC_CONSUME management fee",
			body: push("CC_CONSUME", "ON-C-1003", 3_000, `{"cardId":"UC10001","cardNumber":"`+pan1+`","orderNo":"ON-C-1003",
"customerNo":"CUST77","type":6,"status":1,"amount":1,"direction":2,"currency":"USD","transactionAt":1763798340000,
"transactionId":"TX-1003"}`),
			want: event.Event{Type: "CC_CONSUME", ID: "ON-C-1003", OccurredAt: at(3_000), CardID: "UC10001", HolderID: "CUST77",
				Card: card1,
				Transaction: &event.Transaction{ID: "TX-1003", Type: cardsv1alpha1.TransactionFee,
					Phase: cardsv1alpha1.TransactionCompleted, ProviderStatus: "1", Direction: cardsv1alpha1.Debit,
					Amount: amt("1.00", "USD"), References: txRefs("ON-C-1003"), OccurredAt: at(-60_000)}},
		},
		{
			name: "CC_CONSUME canceled",
			body: push("CC_CONSUME", "ON-C-1004", 4_000, `{"cardId":"UC10001","cardNumber":"`+pan1+`","orderNo":"ON-C-1004",
"customerNo":"CUST77","type":2,"status":7,"amount":"5.00","direction":2,"currency":"USD","transactionAt":1763798340000,
"transactionId":"TX-1004","reason":"Merchant canceled"}`),
			want: event.Event{Type: "CC_CONSUME", ID: "ON-C-1004", OccurredAt: at(4_000), CardID: "UC10001", HolderID: "CUST77",
				Card: card1,
				Transaction: &event.Transaction{ID: "TX-1004", Type: cardsv1alpha1.TransactionPurchase,
					Phase: cardsv1alpha1.TransactionCanceled, ProviderStatus: "7", Direction: cardsv1alpha1.Debit,
					Amount: amt("5.00", "USD"), FailureReason: "Merchant canceled", References: txRefs("ON-C-1004"), OccurredAt: at(-60_000)}},
		},
		{
			name: "CC_REFUND signed amount",
			body: push("CC_REFUND", "ON-R-2001", 5_000, `{"cardId":"UC10001","cardNumber":"`+pan1+`","orderNo":"ON-R-2001",
"customerNo":"CUST77","type":3,"status":1,"amount":"-23.45","direction":1,"merchantName":"LAWSON SHIBUYA","currency":"USD",
"transactionAt":1763798345000,"transactionId":"TX-1001"}`),
			want: event.Event{Type: "CC_REFUND", ID: "ON-R-2001", OccurredAt: at(5_000), CardID: "UC10001", HolderID: "CUST77",
				Card: card1,
				Transaction: &event.Transaction{ID: "TX-1001", Type: cardsv1alpha1.TransactionRefund,
					Phase: cardsv1alpha1.TransactionCompleted, ProviderStatus: "1", Direction: cardsv1alpha1.Credit,
					Amount: amt("23.45", "USD"), Merchant: &cardsv1alpha1.Merchant{Name: "LAWSON SHIBUYA"},
					References: txRefs("ON-R-2001"), OccurredAt: at(-55_000)}},
		},
		{
			name: "CC_WITHDRAW_CASH failed with signed fee",
			body: push("CC_WITHDRAW_CASH", "ON-W-3001", 6_000, `{"cardId":"UC10001","cardNumber":"`+pan1+`",
"orderNo":"ON-W-3001","customerNo":"CUST77","type":4,"status":2,"amount":200,"direction":2,"currency":"EUR",
"transactionAt":1763798350000,"transactionId":"TX-3001","reason":"Exceeds withdrawal limit","fee":"-2.50",
"merchantMcc":"6011","merchantCountry":"DEU"}`),
			want: event.Event{Type: "CC_WITHDRAW_CASH", ID: "ON-W-3001", OccurredAt: at(6_000), CardID: "UC10001",
				HolderID: "CUST77",
				Card:     card1,
				Transaction: &event.Transaction{ID: "TX-3001", Type: cardsv1alpha1.TransactionWithdrawal,
					Phase: cardsv1alpha1.TransactionFailed, ProviderStatus: "2", Direction: cardsv1alpha1.Debit,
					Amount: amt("200.00", "EUR"), Fee: amt("2.50", "EUR"), FailureReason: "Exceeds withdrawal limit",
					Merchant: &cardsv1alpha1.Merchant{MCC: "6011", Country: "DEU"}, References: txRefs("ON-W-3001"), OccurredAt: at(-50_000)}},
		},
		{
			name: "CC_REDEEM unposted is expired",
			body: push("CC_REDEEM", "ON-D-4001", 7_000, `{"cardId":"UC10001","cardNumber":"`+pan1+`","orderNo":"ON-D-4001",
"customerNo":"CUST77","type":5,"status":5,"amount":15.5,"direction":1,"currency":"USD","transactionAt":1763798355000,
"transactionId":"TX-4001"}`),
			want: event.Event{Type: "CC_REDEEM", ID: "ON-D-4001", OccurredAt: at(7_000), CardID: "UC10001", HolderID: "CUST77",
				Card: card1,
				Transaction: &event.Transaction{ID: "TX-4001", Type: cardsv1alpha1.TransactionRedemption,
					Phase: cardsv1alpha1.TransactionExpired, ProviderStatus: "5", Direction: cardsv1alpha1.Credit,
					Amount: amt("15.50", "USD"), References: txRefs("ON-D-4001"), OccurredAt: at(-45_000)}},
		},
		{
			name: "CC_RECHARGE",
			body: push("CC_RECHARGE", "ON-T-5001", 8_000, `{"cardId":"UC10001","cardNumber":"`+pan1+`","orderNo":"ON-T-5001",
"customerNo":"CUST77","type":1,"status":1,"amount":100,"direction":1,"currency":"usd","transactionAt":1763798360000,
"transactionId":"TX-5001","thirdOrderNo":"MER-88812","fee":"0"}`),
			want: event.Event{Type: "CC_RECHARGE", ID: "ON-T-5001", OccurredAt: at(8_000), CardID: "UC10001", HolderID: "CUST77",
				Card: card1,
				Transaction: &event.Transaction{ID: "TX-5001", Type: cardsv1alpha1.TransactionTopUp,
					Phase: cardsv1alpha1.TransactionCompleted, ProviderStatus: "1", Direction: cardsv1alpha1.Credit,
					Amount: amt("100.00", "USD"), Fee: amt("0.00", "USD"), References: txRefs("ON-T-5001", "thirdOrderNo", "MER-88812"), OccurredAt: at(-40_000)}},
		},
		{
			name: "CC_RECHARGE without type takes it from the event",
			body: push("CC_RECHARGE", "ON-T-5002", 9_000, `{"cardId":"UC10001","orderNo":"ON-T-5002","customerNo":"CUST77",
"status":3,"amount":"250.00","direction":1,"currency":"USD","transactionAt":1763798360000,"transactionId":"TX-5002"}`),
			want: event.Event{Type: "CC_RECHARGE", ID: "ON-T-5002", OccurredAt: at(9_000), CardID: "UC10001", HolderID: "CUST77",
				Transaction: &event.Transaction{ID: "TX-5002", Type: cardsv1alpha1.TransactionTopUp,
					Phase: cardsv1alpha1.TransactionPending, ProviderStatus: "3", Direction: cardsv1alpha1.Credit,
					Amount: amt("250.00", "USD"), References: txRefs("ON-T-5002"), OccurredAt: at(-40_000)}},
		},
		{
			name: "3DS_OTP",
			body: push("3DS_OTP", "ON-3-6001", 10_000, `{"cardId":"UC10001","cardNumber":"`+pan1+`","customerNo":"CUST77",
"3dsCode":"482913","orderNo":"3DS-20251122-0001","merchants":"AMAZON MKTPL","amount":"59.99","transactionCurrency":"USD",
"transactionTime":1763798395000}`),
			secret: "482913",
			want: event.Event{Type: "3DS_OTP", ID: "ON-3-6001", OccurredAt: at(10_000), CardID: "UC10001", HolderID: "CUST77",
				Card: card1,
				Challenge: &event.Challenge{ID: "3DS-20251122-0001", Purpose: "3ds", Method: "OTP", Amount: amt("59.99", "USD"),
					Merchant: &cardsv1alpha1.Merchant{Name: "AMAZON MKTPL"}, Code: "482913"}},
		},
		{
			name: "3DS_CONFIRM code",
			body: push("3DS_CONFIRM", "ON-3-6002", 11_000, `{"cardId":"UC10001","cardNumber":"`+pan1+`","customerNo":"CUST77",
"type":"code","validateCode":"739105","merchants":"BOOKING.COM","transactionTime":1763798396000,"amount":412.8,
"transactionCurrency":"EUR"}`),
			secret: "739105",
			want: event.Event{Type: "3DS_CONFIRM", ID: "ON-3-6002", OccurredAt: at(11_000), CardID: "UC10001", HolderID: "CUST77",
				Card: card1,
				Challenge: &event.Challenge{Purpose: "3ds", Method: "OTP", Amount: amt("412.80", "EUR"),
					Merchant: &cardsv1alpha1.Merchant{Name: "BOOKING.COM"}, Code: "739105"}},
		},
		{
			name: "3DS_CONFIRM link",
			body: push("3DS_CONFIRM", "ON-3-6003", 12_000, `{"cardId":"UC10001","cardNumber":"`+pan1+`","customerNo":"CUST77",
"type":"link","url":"https://acs.upay.example/3ds/confirm?t=Zq81xK","merchants":"BOOKING.COM",
"transactionTime":1763798397000,"amount":"412.80","transactionCurrency":"EUR"}`),
			secret: "https://acs.upay.example/3ds/confirm?t=Zq81xK",
			want: event.Event{Type: "3DS_CONFIRM", ID: "ON-3-6003", OccurredAt: at(12_000), CardID: "UC10001", HolderID: "CUST77",
				Card: card1,
				Challenge: &event.Challenge{Purpose: "3ds", Method: "URL", Amount: amt("412.80", "EUR"),
					Merchant: &cardsv1alpha1.Merchant{Name: "BOOKING.COM"}, Code: "https://acs.upay.example/3ds/confirm?t=Zq81xK"}},
		},
		{
			name: "CR_RECHARGE",
			body: push("CR_RECHARGE", "ON-CR-7001", 13_000, `{"cardId":"UC10001","orderNo":"CR-7001","customerNo":"CUST77",
"cardNumber":"5326 1200 0000 1232","amount":50,"status":8,"subscribeAt":1763798390000}`),
			want: event.Event{Type: "CR_RECHARGE", ID: "ON-CR-7001", OccurredAt: at(13_000), CardID: "UC10001",
				HolderID: "CUST77", Card: &event.Card{Number: masked("532612", "1232"), References: map[string]string{
					"CR_RECHARGE.orderNo": "CR-7001", "CR_RECHARGE.status": "8", "CR_RECHARGE.subscribeAt": "1763798390000",
					"CR_RECHARGE.amount": "50"}}},
		},
		{
			name: "CA_APPLY paid",
			body: push("CA_APPLY", "ON-CA-8001", 14_000, `{"cardId":"UC20002","orderNo":"CA-8001","customerNo":"CUST78",
"amount":"10.00","status":1,"subscribeAt":1763798390000}`),
			want: event.Event{Type: "CA_APPLY", ID: "ON-CA-8001", OccurredAt: at(14_000), CardID: "UC20002", HolderID: "CUST78",
				Card: &event.Card{Phase: cardsv1alpha1.CardRequested, ProviderStatus: "apply:1", References: map[string]string{
					"CA_APPLY.orderNo": "CA-8001", "CA_APPLY.subscribeAt": "1763798390000", "CA_APPLY.amount": "10.00"}}},
		},
		{
			name: "CA_APPLY pending payment",
			body: push("CA_APPLY", "ON-CA-8002", 15_000, `{"cardId":"UC20003","orderNo":"CA-8002","customerNo":"CUST78",
"amount":"10.00","status":2,"subscribeAt":1763798390000}`),
			want: event.Event{Type: "CA_APPLY", ID: "ON-CA-8002", OccurredAt: at(15_000), CardID: "UC20003", HolderID: "CUST78",
				Card: &event.Card{Phase: cardsv1alpha1.CardRequested, ProviderStatus: "apply:2", References: map[string]string{
					"CA_APPLY.orderNo": "CA-8002", "CA_APPLY.subscribeAt": "1763798390000", "CA_APPLY.amount": "10.00"}}},
		},
		{
			name: "NE_VERIFY card activation",
			body: push("NE_VERIFY", "ON-NE-9001", 16_000, `{"cardId":"UC20002","orderNo":"NE-9001","code":"270446",
"cardNumber":"`+pan2+`","type":"CARD_ACTIVATION","customerNo":"CUST78"}`),
			secret: "270446",
			want: event.Event{Type: "NE_VERIFY", ID: "ON-NE-9001", OccurredAt: at(16_000), CardID: "UC20002", HolderID: "CUST78",
				Challenge: &event.Challenge{ID: "NE-9001", Purpose: "activation", Method: "OTP", Status: "CARD_ACTIVATION",
					Code: "270446"},
				Card: &event.Card{Number: masked("428852", "7650")}},
		},
		{
			name: "NE_VERIFY view card",
			body: push("NE_VERIFY", "ON-NE-9002", 17_000, `{"cardId":"UC20002","orderNo":"NE-9002","code":"615802",
"cardNumber":"`+pan2+`","type":"CAT_CARD","customerNo":"CUST78"}`),
			secret: "615802",
			want: event.Event{Type: "NE_VERIFY", ID: "ON-NE-9002", OccurredAt: at(17_000), CardID: "UC20002", HolderID: "CUST78",
				Challenge: &event.Challenge{ID: "NE-9002", Purpose: "verification", Method: "OTP", Status: "CAT_CARD",
					Code: "615802"},
				Card: &event.Card{Number: masked("428852", "7650")}},
		},
		{
			name: "KS_KYC approved",
			body: push("KS_KYC", "ON-K-1101", 18_000, `{"customerNo":"CUST78","documentType":"2","status":"1"}`),
			want: event.Event{Type: "KS_KYC", ID: "ON-K-1101", OccurredAt: at(18_000), HolderID: "CUST78",
				KYC: &event.KYC{State: cardsv1alpha1.KYCApproved}},
		},
		{
			name: "KS_KYC rejected",
			body: push("KS_KYC", "ON-K-1102", 19_000, `{"customerNo":"CUST79","documentType":"1","status":"2",
"reason":"Document image is blurred"}`),
			want: event.Event{Type: "KS_KYC", ID: "ON-K-1102", OccurredAt: at(19_000), HolderID: "CUST79",
				KYC: &event.KYC{State: cardsv1alpha1.KYCRejected, Reason: "Document image is blurred"}},
		},
		{
			name: "MF_MATERIAL_FLOW",
			body: push("MF_MATERIAL_FLOW", "ON-MF-1201", 20_000, `{"dispatchTime":"2025-11-21 10:00:00",
"logisticsOrderNo":"SF1234567890","logisticsCompanyName":"SF Express","recipientAddress":"Flat 3, 12 Queen's Road, Hong Kong",
"logisticsImage":"https://img.upay.example/l/1201.jpg","cardId":"UC20002"}`),
			want: event.Event{Type: "MF_MATERIAL_FLOW", ID: "ON-MF-1201", OccurredAt: at(20_000), CardID: "UC20002",
				Logistics: &event.Logistics{State: cardsv1alpha1.LogisticsShipped, Carrier: "SF Express",
					TrackingNumber: "SF1234567890"},
				Card: &event.Card{References: map[string]string{"dispatchTime": "2025-11-21 10:00:00"}}},
		},
		{
			name: "CS_APPROVED virtual",
			body: push("CS_APPROVED", "ON-CS-1301", 21_000, `{"orderNo":"CS-1301","cardId":"UC30003","cardNumber":"`+pan3+`",
"customerNo":"CUST80","cardStatus":1}`),
			want: event.Event{Type: "CS_APPROVED", ID: "ON-CS-1301", OccurredAt: at(21_000), CardID: "UC30003", HolderID: "CUST80",
				Card: &event.Card{Phase: cardsv1alpha1.CardActive, ProviderStatus: "1", Type: cardsv1alpha1.CardVirtual,
					Number: masked("522981", "7894"), References: map[string]string{"CS_APPROVED.orderNo": "CS-1301"}}},
		},
		{
			name: "CS_APPROVED physical",
			body: push("CS_APPROVED", "ON-CS-1302", 22_000, `{"orderNo":"CS-1302","cardId":"UC20002","cardNumber":"`+pan2+`",
"customerNo":"CUST78","cardStatus":2}`),
			want: event.Event{Type: "CS_APPROVED", ID: "ON-CS-1302", OccurredAt: at(22_000), CardID: "UC20002", HolderID: "CUST78",
				Card: &event.Card{Phase: cardsv1alpha1.CardPendingActivation, ProviderStatus: "2",
					Type: cardsv1alpha1.CardPhysical, Number: masked("428852", "7650"),
					References: map[string]string{"CS_APPROVED.orderNo": "CS-1302"}}},
		},
		{
			name: "CE_EVENT Frozen",
			body: push("CE_EVENT", "ON-CE-1401", 23_000, `{"cardId":"UC10001","event":"Frozen","reason":"Suspicious activity"}`),
			want: event.Event{Type: "CE_EVENT", ID: "ON-CE-1401", OccurredAt: at(23_000), CardID: "UC10001",
				Card: &event.Card{Phase: cardsv1alpha1.CardFrozen, ProviderStatus: "Frozen", Reason: "Suspicious activity"}},
		},
		{
			name: "CE_EVENT Unfrozen",
			body: push("CE_EVENT", "ON-CE-1402", 24_000, `{"cardId":"UC10001","event":"Unfrozen"}`),
			want: event.Event{Type: "CE_EVENT", ID: "ON-CE-1402", OccurredAt: at(24_000), CardID: "UC10001",
				Card: &event.Card{Phase: cardsv1alpha1.CardActive, ProviderStatus: "Unfrozen"}},
		},
		{
			name: "CC_AUTHORIZATION sample",
			body: string(sample(t, "upay-authorization.json")),
			want: event.Event{Type: "CC_AUTHORIZATION", ID: "ON202611220002", OccurredAt: at(60_000), CardID: "UC10001",
				Authorization: &event.AuthorizationRequest{TransactionID: "TX-77-1", AuthorizationID: "AU-77-1",
					Amount: *amt("42.10", "USD"), Merchant: &cardsv1alpha1.Merchant{MCC: "5814"}, Channel: "ECOMMERCE",
					References: map[string]string{"trace": "tr_9001"}},
				Card: &event.Card{Number: masked("", "1234")}},
		},
		{
			name: "CC_AUTHORIZATION full card number",
			body: push("CC_AUTHORIZATION", "ON-A-1501", 25_000, `{"cardId":"UC30003","cardNumber":"`+pan3+`","amount":"120",
"currency":"EUR","transactionId":"TX-1501","authorizationId":"AU-1501","transactionChannel":"POS"}`),
			want: event.Event{Type: "CC_AUTHORIZATION", ID: "ON-A-1501", OccurredAt: at(25_000), CardID: "UC30003",
				Authorization: &event.AuthorizationRequest{TransactionID: "TX-1501", AuthorizationID: "AU-1501",
					Amount: *amt("120.00", "EUR"), Channel: "POS", References: map[string]string{"trace": "tr-ON-A-1501"}},
				Card: &event.Card{Number: masked("522981", "7894")}},
		},
		{
			name: "CSC_STATUS_CHANGE sample",
			body: string(sample(t, "upay-card-status.json")),
			want: event.Event{Type: "CSC_STATUS_CHANGE", ID: "ON202611220001", OccurredAt: at(0), CardID: "UC10001",
				HolderID: "CUST77", Card: &event.Card{Phase: cardsv1alpha1.CardFrozen, ProviderStatus: "3",
					Reason: "frozen by user", Number: masked("", "1234"),
					References: map[string]string{"CSC_STATUS_CHANGE.orderNo": "ON202611220001"}}},
		},
	}
	// Every documented card status; transitional ones (locking, unlocking, deactivating, replacing) set no phase.
	statuses := []struct {
		code  string
		phase cardsv1alpha1.CardPhase
	}{
		{"1", cardsv1alpha1.CardActive}, {"2", cardsv1alpha1.CardPendingActivation}, {"3", cardsv1alpha1.CardFrozen},
		{"4", cardsv1alpha1.CardLocked}, {"5", cardsv1alpha1.CardClosed}, {"6", cardsv1alpha1.CardRequested},
		{"7", cardsv1alpha1.CardPendingActivation}, {"8", ""}, {"9", ""}, {"10", ""}, {"13", cardsv1alpha1.CardFailed},
		{"14", cardsv1alpha1.CardClosed}, {"15", ""}, {"16", cardsv1alpha1.CardClosed},
	}
	for i, s := range statuses {
		order := fmt.Sprintf("ON-S-%02d", i)
		off := int64(30_000 + i*100)
		cs = append(cs, decodeCase{
			name: "CSC_STATUS_CHANGE " + s.code,
			body: push("CSC_STATUS_CHANGE", order, off, `{"cardId":"UC10001","cardNumber":"`+pan1+`","status":"`+s.code+
				`","orderNo":"`+order+`","customerNo":"CUST77","reason":"status `+s.code+`"}`),
			want: event.Event{Type: "CSC_STATUS_CHANGE", ID: order, OccurredAt: at(off), CardID: "UC10001", HolderID: "CUST77",
				Card: &event.Card{Phase: s.phase, ProviderStatus: s.code, Reason: "status " + s.code,
					Number: masked("532612", "1232"), References: map[string]string{"CSC_STATUS_CHANGE.orderNo": order}}},
		})
	}
	return cs
}

var successAck = adapter.Answer{Status: http.StatusOK, ContentType: "text/plain; charset=utf-8", Body: []byte("SUCCESS")}

func TestDecodeEvents(t *testing.T) {
	for _, c := range cases(t) {
		t.Run(c.name, func(t *testing.T) {
			req := signed(t, []byte(c.body))
			res, err := Adapter{}.Decode(req)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if res.Unknown || res.EventType != c.want.Type {
				t.Errorf("Unknown = %v, EventType = %q, want a known %q", res.Unknown, res.EventType, c.want.Type)
			}
			if !reflect.DeepEqual(res.Ack, successAck) {
				t.Errorf("Ack = %+v, want %+v", res.Ack, successAck)
			}
			if want := req.Header.Get("X-UPA-REQUESTID"); res.DeliveryID != want {
				t.Errorf("DeliveryID = %q, want %q", res.DeliveryID, want)
			}
			if len(res.Events) != 1 {
				t.Fatalf("got %d events, want 1", len(res.Events))
			}
			if got := res.Events[0]; !reflect.DeepEqual(got, c.want) {
				t.Errorf("event mismatch\n got: %s\nwant: %s", deep(got), deep(c.want))
			}
			if (c.want.Type == "CC_AUTHORIZATION") != (res.Authorize != nil) {
				t.Errorf("Authorize set = %v for %s", res.Authorize != nil, c.want.Type)
			}
		})
	}
}

func TestAuthorizeAnswers(t *testing.T) {
	res, err := Adapter{}.Decode(signed(t, sample(t, "upay-authorization.json")))
	if err != nil {
		t.Fatal(err)
	}
	if res.Authorize == nil {
		t.Fatal("CC_AUTHORIZATION has no Authorize")
	}
	for approved, body := range map[bool]string{true: "approve", false: "decline"} {
		a := res.Authorize(approved)
		if a.Status != http.StatusOK || string(a.Body) != body || !strings.HasPrefix(a.ContentType, "text/plain") {
			t.Errorf("Authorize(%v) = %d %q %q, want 200 text/plain %q", approved, a.Status, a.ContentType, a.Body, body)
		}
	}
}

func TestUnknownEventIsAcknowledged(t *testing.T) {
	for name, body := range map[string]string{
		"with detail": push("CC_FUTURE_THING", "ON-U-1", 1_000, `{"cardId":"UC10001","foo":{"bar":[1,2]}}`),
		"no detail":   `{"event":"AC_ACCOUNT_NOTICE","trace":"tr-u","orderNo":"ON-U-2","timestamp":1763798401000}`,
	} {
		t.Run(name, func(t *testing.T) {
			req := signed(t, []byte(body))
			res, err := Adapter{}.Decode(req)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !res.Unknown || len(res.Events) != 0 || res.EventType != eventName(t, []byte(body)) {
				t.Errorf("got Unknown=%v events=%d type=%q", res.Unknown, len(res.Events), res.EventType)
			}
			if !reflect.DeepEqual(res.Ack, successAck) || res.Authorize != nil {
				t.Errorf("Ack = %+v (Authorize set %v), want SUCCESS", res.Ack, res.Authorize != nil)
			}
			if res.DeliveryID != req.Header.Get("X-UPA-REQUESTID") {
				t.Errorf("DeliveryID = %q", res.DeliveryID)
			}
		})
	}
	// An unknown event is still verified.
	req := signedAt(t, endpoint(nil), "wrong-key", []byte(push("CC_FUTURE_THING", "ON-U-3", 0, `{}`)), now)
	if _, err := (Adapter{}).Decode(req); !rejected(err, cardsv1alpha1.ReasonInvalidSignature) {
		t.Errorf("unknown event with a bad signature: err = %v", err)
	}
}

func rejected(err error, reason string) bool {
	var r *adapter.Rejection
	return errors.As(err, &r) && r.Reason == reason
}

func TestVerification(t *testing.T) {
	body := sample(t, "upay-card-status.json")
	tol := endpointconfig.DefaultTimestampTolerance
	b64 := func(mac []byte) string { return base64.StdEncoding.EncodeToString(mac) }
	// resign replaces the signature with sig(the request's timestamp header).
	resign := func(sig func(ts string) string) func(*adapter.Request) {
		return func(r *adapter.Request) { r.Header.Set("X-UPA-SIGN", sig(r.Header.Get("X-UPA-TIMESTAMP"))) }
	}
	for _, c := range []struct {
		name   string
		ep     *endpointconfig.Resolved
		key    string
		ts     time.Time
		mutate func(*adapter.Request)
		reason string // "" = accepted
	}{
		{name: "valid base64"},
		{name: "explicit Base64 option", ep: endpoint(&cardsv1alpha1.UPayOptions{SignatureEncoding: "Base64"})},
		{name: "missing X-UPA-SIGN", mutate: func(r *adapter.Request) { r.Header.Del("X-UPA-SIGN") },
			reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "missing X-UPA-TIMESTAMP", mutate: func(r *adapter.Request) { r.Header.Del("X-UPA-TIMESTAMP") },
			reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "no headers at all", mutate: func(r *adapter.Request) { r.Header = http.Header{} },
			reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "wrong key", key: "another-merchant-secret", reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "empty key on the endpoint", ep: func() *endpointconfig.Resolved { e := endpoint(nil); e.SigningKey = nil; return e }(),
			reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "tampered body", mutate: func(r *adapter.Request) {
			r.Body = []byte(strings.Replace(string(r.Body), `"status":"3"`, `"status":"1"`, 1))
		}, reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "tampered event name", mutate: func(r *adapter.Request) {
			r.Body = []byte(strings.Replace(string(r.Body), `"CSC_STATUS_CHANGE"`, `"CE_EVENT"`, 1))
		}, reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "timestamp header changed after signing", mutate: func(r *adapter.Request) {
			ts, _ := strconv.ParseInt(r.Header.Get("X-UPA-TIMESTAMP"), 10, 64)
			r.Header.Set("X-UPA-TIMESTAMP", strconv.FormatInt(ts+1, 10))
		}, reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "signature without the event prefix", mutate: resign(func(ts string) string {
			m := hmac.New(sha256.New, []byte(signingKey))
			m.Write([]byte(ts + "|"))
			m.Write(body)
			return b64(m.Sum(nil))
		}), reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "signature not base64", mutate: func(r *adapter.Request) { r.Header.Set("X-UPA-SIGN", "%%not-base64%%") },
			reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "hex signature without the Hex option", mutate: resign(func(ts string) string {
			return hex.EncodeToString(specMAC(signingKey, "CSC_STATUS_CHANGE", ts, body))
		}), reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "Hex option accepts hex", ep: endpoint(hexOption)},
		{name: "Hex option accepts upper-case hex", ep: endpoint(hexOption), mutate: func(r *adapter.Request) {
			r.Header.Set("X-UPA-SIGN", strings.ToUpper(r.Header.Get("X-UPA-SIGN")))
		}},
		{name: "Hex option refuses base64", ep: endpoint(hexOption), mutate: resign(func(ts string) string {
			return b64(specMAC(signingKey, "CSC_STATUS_CHANGE", ts, body))
		}), reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "Hex option refuses a wrong key", ep: endpoint(hexOption), key: "another-merchant-secret",
			reason: cardsv1alpha1.ReasonInvalidSignature},
		{name: "stale timestamp", ts: now.Add(-tol - time.Second), reason: cardsv1alpha1.ReasonStaleTimestamp},
		{name: "future timestamp", ts: now.Add(tol + time.Second), reason: cardsv1alpha1.ReasonStaleTimestamp},
		{name: "stale timestamp with Hex option", ep: endpoint(hexOption), ts: now.Add(-tol - time.Second),
			reason: cardsv1alpha1.ReasonStaleTimestamp},
		{name: "at the tolerance in the past", ts: now.Add(-tol)},
		{name: "at the tolerance in the future", ts: now.Add(tol)},
		{name: "stale under a 30s tolerance", ts: now.Add(-31 * time.Second), reason: cardsv1alpha1.ReasonStaleTimestamp,
			ep: func() *endpointconfig.Resolved { e := endpoint(nil); e.TimestampTolerance = 30 * time.Second; return e }()},
	} {
		t.Run(c.name, func(t *testing.T) {
			ep, key, ts := c.ep, c.key, c.ts
			if ep == nil {
				ep = endpoint(nil)
			}
			if key == "" {
				key = signingKey
			}
			if ts.IsZero() {
				ts = now.Add(-2 * time.Second)
			}
			req := signedAt(t, ep, key, append([]byte(nil), body...), ts)
			if c.mutate != nil {
				c.mutate(req)
			}
			res, err := Adapter{}.Decode(req)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if len(res.Events) != 1 || res.Events[0].Card == nil || res.Events[0].Card.Phase != cardsv1alpha1.CardFrozen {
					t.Errorf("accepted callback decoded to %+v", res.Events)
				}
				return
			}
			var r *adapter.Rejection
			if !errors.As(err, &r) {
				t.Fatalf("err = %v (%T), want a *adapter.Rejection %s", err, err, c.reason)
			}
			if r.Reason != c.reason || r.Status != http.StatusUnauthorized {
				t.Errorf("got %d %s (%s), want 401 %s", r.Status, r.Reason, r.Message, c.reason)
			}
			if res != nil {
				t.Errorf("rejected callback returned a result")
			}
		})
	}
}

// A correctly signed timestamp that is not epoch milliseconds is refused, whatever its form.
func TestTimestampHeaderForms(t *testing.T) {
	body := sample(t, "upay-card-status.json")
	ep := endpoint(nil)
	for ts, reason := range map[string]string{
		strconv.FormatInt(now.Unix(), 10): "", // epoch seconds of now is within tolerance
		"yesterday":                       cardsv1alpha1.ReasonMalformed,
		"1":                               cardsv1alpha1.ReasonStaleTimestamp,
		"99999999999999999":               cardsv1alpha1.ReasonStaleTimestamp,
	} {
		h := http.Header{}
		h.Set("X-UPA-TIMESTAMP", ts)
		h.Set("X-UPA-SIGN", base64.StdEncoding.EncodeToString(specMAC(signingKey, "CSC_STATUS_CHANGE", ts, body)))
		_, err := Adapter{}.Decode(&adapter.Request{Header: h, Body: body, Received: now, Endpoint: ep})
		if reason == "" && err != nil || reason != "" && !rejected(err, reason) {
			t.Errorf("timestamp %q: err = %v, want %q", ts, err, reason)
		}
	}
}

func TestMalformed(t *testing.T) {
	for _, c := range []struct {
		name  string
		body  string
		wants []string // substrings of the message
	}{
		{"transaction without transactionId", push("CC_CONSUME", "ON-M-1", 0,
			`{"cardId":"UC1","status":1,"amount":"1.00","currency":"USD"}`), []string{"CC_CONSUME", "transactionId"}},
		{"transaction amount not a number", push("CC_REFUND", "ON-M-4", 0,
			`{"cardId":"UC1","transactionId":"T","status":1,"amount":"12.5x","currency":"USD"}`), []string{"CC_REFUND", "amount"}},
		{"transaction amount with exponent", push("CC_CONSUME", "ON-M-5", 0,
			`{"cardId":"UC1","transactionId":"T","status":1,"amount":1e3,"currency":"USD"}`), []string{"CC_CONSUME", "amount"}},
		{"transaction amount missing", push("CC_CONSUME", "ON-M-6", 0,
			`{"cardId":"UC1","transactionId":"T","status":1,"currency":"USD"}`), []string{"CC_CONSUME", "amount"}},
		{"transaction without currency", push("CC_RECHARGE", "ON-M-7", 0,
			`{"cardId":"UC1","transactionId":"T","status":1,"amount":"1.00"}`), []string{"CC_RECHARGE", "currency"}},
		{"bad fee", push("CC_WITHDRAW_CASH", "ON-M-8", 0,
			`{"cardId":"UC1","transactionId":"T","status":1,"amount":"1.00","currency":"USD","fee":"abc"}`), []string{"CC_WITHDRAW_CASH", "fee"}},
		{"bad originalAmount", push("CC_CONSUME", "ON-M-9", 0,
			`{"cardId":"UC1","transactionId":"T","status":1,"amount":"1.00","currency":"USD","originalAmount":"x","originalCurrency":"EUR"}`),
			[]string{"CC_CONSUME", "originalAmount"}},
		{"bad transactionAt", push("CC_REDEEM", "ON-M-10", 0,
			`{"cardId":"UC1","transactionId":"T","status":1,"amount":"1.00","currency":"USD","transactionAt":"soon"}`),
			[]string{"CC_REDEEM", "transactionAt"}},
		{"transaction without cardId", push("CC_CONSUME", "ON-M-11", 0,
			`{"transactionId":"T","status":1,"amount":"1.00","currency":"USD"}`), []string{"CC_CONSUME", "cardId"}},
		{"authorization without transactionId", push("CC_AUTHORIZATION", "ON-M-12", 0,
			`{"cardId":"UC1","amount":"1.00","currency":"USD"}`), []string{"CC_AUTHORIZATION", "transactionId"}},
		{"authorization without amount", push("CC_AUTHORIZATION", "ON-M-13", 0,
			`{"cardId":"UC1","transactionId":"T","currency":"USD"}`), []string{"CC_AUTHORIZATION", "amount"}},
		{"3DS amount bad", push("3DS_OTP", "ON-M-14", 0,
			`{"cardId":"UC1","3dsCode":"111111","amount":"abc","transactionCurrency":"USD"}`), []string{"3DS_OTP", "amount"}},
		{"3DS currency bad", push("3DS_CONFIRM", "ON-M-15", 0,
			`{"cardId":"UC1","type":"code","amount":"1","transactionCurrency":"DOLLARS"}`), []string{"3DS_CONFIRM", "amount"}},
		{"KYC without customerNo", push("KS_KYC", "ON-M-21", 0, `{"status":"1"}`), []string{"KS_KYC", "customerNo"}},
		{"CA_APPLY amount not a number", push("CA_APPLY", "ON-M-27", 0, `{"cardId":"UC1","amount":"ten","status":1}`),
			[]string{"CA_APPLY", "amount"}},
		{"CR_RECHARGE amount with a bad currency", push("CR_RECHARGE", "ON-M-28", 0,
			`{"cardId":"UC1","amount":"10","currency":"DOLLARS","status":8}`), []string{"CR_RECHARGE", "amount"}},
		{"CA_APPLY without cardId", push("CA_APPLY", "ON-M-22", 0, `{"orderNo":"CA","status":1}`), []string{"CA_APPLY", "cardId"}},
		{"known event without detail", `{"event":"CC_CONSUME","trace":"t","orderNo":"ON-M-23","timestamp":1763798400000}`,
			[]string{"CC_CONSUME", "detail"}},
		{"detail not an object", `{"event":"CE_EVENT","orderNo":"ON-M-24","timestamp":1763798400000,"detail":"eyJhbGciOiJSU0EtT0FFUCJ9"}`,
			[]string{"CE_EVENT", "detail"}},
		{"bad envelope timestamp", `{"event":"CE_EVENT","orderNo":"ON-M-25","timestamp":"later","detail":{"cardId":"UC1","event":"Frozen"}}`,
			[]string{"CE_EVENT", "timestamp"}},
		{"envelope without event", `{"orderNo":"ON-M-26","timestamp":1763798400000,"detail":{"cardId":"UC1"}}`, []string{"event"}},
		{"encrypted body", `eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0.a.b.c.d`, []string{"encrypt"}},
		{"JSON array", `[{"event":"CE_EVENT"}]`, []string{"JSON object"}},
		{"trailing data", `{"event":"CE_EVENT","detail":{}} {}`, []string{"after"}},
		{"empty body", ``, []string{"JSON"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := strconv.FormatInt(now.UnixMilli(), 10)
			h := http.Header{}
			h.Set("X-UPA-TIMESTAMP", ts)
			// The name as the adapter reads it; bodies that are not JSON get a signature over an empty name.
			var env struct {
				Event string `json:"event"`
			}
			_ = json.Unmarshal([]byte(c.body), &env)
			h.Set("X-UPA-SIGN", base64.StdEncoding.EncodeToString(specMAC(signingKey, env.Event, ts, []byte(c.body))))
			res, err := Adapter{}.Decode(&adapter.Request{Header: h, Body: []byte(c.body), Received: now, Endpoint: endpoint(nil)})
			var r *adapter.Rejection
			if !errors.As(err, &r) {
				t.Fatalf("err = %v, res = %+v, want a Malformed rejection", err, res)
			}
			if r.Reason != cardsv1alpha1.ReasonMalformed || r.Status != http.StatusBadRequest {
				t.Errorf("got %d %s (%s), want 400 Malformed", r.Status, r.Reason, r.Message)
			}
			for _, w := range c.wants {
				if !strings.Contains(r.Message, w) {
					t.Errorf("message %q does not mention %q", r.Message, w)
				}
			}
		})
	}
}

// deep is fmt's %+v of v with every pointer followed, so nested facts print their contents, not addresses.
func deep(v any) string {
	var b strings.Builder
	walk(&b, reflect.ValueOf(v))
	return b.String()
}

var timeType = reflect.TypeOf(time.Time{})

func walk(b *strings.Builder, v reflect.Value) {
	switch v.Kind() {
	case reflect.Invalid:
		b.WriteString("<nil>")
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			b.WriteString("<nil>")
			return
		}
		walk(b, v.Elem())
	case reflect.Struct:
		if v.Type() == timeType {
			fmt.Fprintf(b, "%+v", v.Interface())
			return
		}
		b.WriteString("{")
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			fmt.Fprintf(b, "%s:", f.Name)
			walk(b, v.Field(i))
			b.WriteString(" ")
		}
		b.WriteString("}")
	case reflect.Slice, reflect.Array:
		b.WriteString("[")
		for i := range v.Len() {
			walk(b, v.Index(i))
			b.WriteString(" ")
		}
		b.WriteString("]")
	case reflect.Map:
		b.WriteString("map[")
		for _, k := range v.MapKeys() {
			walk(b, k)
			b.WriteString(":")
			walk(b, v.MapIndex(k))
			b.WriteString(" ")
		}
		b.WriteString("]")
	default:
		fmt.Fprintf(b, "%+v", v.Interface())
	}
}

// printed is everything fmt.Sprintf("%+v") shows of an event: the event itself and each fact it points to.
func printed(ev event.Event) string {
	return pointerAddr.ReplaceAllString(fmt.Sprintf("%+v", ev), "0x…") + "\n" + deep(ev)
}

func TestNoSecretsInEvents(t *testing.T) {
	cs := cases(t)
	// A payload carrying a CVC, which UPay does not document but a careless sender might add.
	cs = append(cs, decodeCase{name: "CC_CONSUME with cvv", body: push("CC_CONSUME", "ON-X-1", 0,
		`{"cardId":"UC10001","cardNumber":"`+pan1+`","cvv":"`+cvc+`","cvc":"`+cvc+`","type":2,"status":1,"amount":"9.99",
"direction":2,"currency":"USD","transactionId":"TX-X-1","transactionAt":1763798340000}`)})
	var secrets []string
	for _, c := range cs {
		if c.secret != "" {
			secrets = append(secrets, c.secret)
		}
	}
	sawPAN := 0
	for _, c := range cs {
		t.Run(c.name, func(t *testing.T) {
			if len(pan.Find(c.body)) > 0 {
				sawPAN++
			}
			res, err := Adapter{}.Decode(signed(t, []byte(c.body)))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			for _, ev := range res.Events {
				if c.secret != "" {
					if ev.Challenge == nil || ev.Challenge.Code != c.secret {
						t.Fatalf("the code %q is not in Challenge.Code", c.secret)
					}
					// The dump reaches Code, so the absence checks below mean something.
					if !strings.Contains(printed(ev), c.secret) {
						t.Fatalf("dump does not show Challenge.Code; the leak check is blind")
					}
					ch := *ev.Challenge
					ch.Code = ""
					ev.Challenge = &ch
				}
				out := printed(ev)
				if found := pan.Find(out); len(found) > 0 {
					t.Errorf("full card number %v in %s", found, out)
				}
				for _, s := range secrets {
					if strings.Contains(out, s) {
						t.Errorf("one-time code %q outside Challenge.Code: %s", s, out)
					}
				}
				if strings.Contains(out, cvc) || strings.Contains(strings.ToLower(out), "cvv") {
					t.Errorf("CVC in %s", out)
				}
			}
		})
	}
	if sawPAN < 10 {
		t.Errorf("only %d payloads carry a full card number; the PAN check needs them", sawPAN)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, o := range []*cardsv1alpha1.UPayOptions{nil, hexOption} {
		ep := endpoint(o)
		for _, c := range cases(t) {
			t.Run(fmt.Sprintf("%v/%s", o != nil, c.name), func(t *testing.T) {
				h, body, err := Encode(ep, []byte(c.body), now)
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				ts := h.Get("X-UPA-TIMESTAMP")
				if ts != strconv.FormatInt(now.UnixMilli(), 10) {
					t.Errorf("X-UPA-TIMESTAMP = %q, want epoch ms", ts)
				}
				mac := specMAC(signingKey, c.want.Type, ts, body)
				want := base64.StdEncoding.EncodeToString(mac)
				if o != nil {
					want = hex.EncodeToString(mac)
				}
				if got := h.Get("X-UPA-SIGN"); got != want {
					t.Errorf("X-UPA-SIGN = %q, want %q per the UPay spec", got, want)
				}
				if h.Get("X-UPA-REQUESTID") == "" {
					t.Error("no X-UPA-REQUESTID")
				}
				res, err := Adapter{}.Decode(&adapter.Request{Header: h, Body: body, Received: now, Endpoint: ep})
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if res.DeliveryID != h.Get("X-UPA-REQUESTID") {
					t.Errorf("DeliveryID = %q, want %q", res.DeliveryID, h.Get("X-UPA-REQUESTID"))
				}
				if len(res.Events) != 1 || !reflect.DeepEqual(res.Events[0], c.want) {
					t.Errorf("round trip\n got: %s\nwant: %s", deep(res.Events), deep(c.want))
				}
			})
		}
	}
	if _, _, err := Encode(endpoint(nil), []byte("not json"), now); err == nil {
		t.Error("Encode accepted a body that is not JSON")
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range cases(f) {
		f.Add([]byte(c.body), uint8(0))
		f.Add([]byte(c.body), uint8(1))
	}
	for _, name := range []string{"upay-authorization.json", "upay-card-status.json"} {
		f.Add(sample(f, name), uint8(0))
	}
	f.Add([]byte(`{"event":"X","detail":null}`), uint8(0))
	f.Add([]byte(`eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d`), uint8(2))
	f.Fuzz(func(t *testing.T, body []byte, mode uint8) {
		ep := endpoint(nil)
		ts := strconv.FormatInt(now.Add(-time.Second).UnixMilli(), 10)
		// Sign with the name the adapter will read, so the mapping code is reached, not only the signature check.
		var name string
		if env, err := adapter.Object(body); err == nil {
			name = adapter.Str(env, "event")
		}
		mac := specMAC(signingKey, name, ts, body)
		sig := base64.StdEncoding.EncodeToString(mac)
		switch mode % 3 {
		case 1:
			ep, sig = endpoint(hexOption), hex.EncodeToString(mac)
		case 2:
			sig = string(body)
		}
		h := http.Header{}
		h.Set("X-UPA-TIMESTAMP", ts)
		h.Set("X-UPA-SIGN", sig)
		res, err := Adapter{}.Decode(&adapter.Request{Header: h, Body: body, Received: now, Endpoint: ep})
		if err != nil {
			var r *adapter.Rejection
			if !errors.As(err, &r) {
				t.Fatalf("error %v is %T, not *adapter.Rejection", err, err)
			}
			if r.Status != http.StatusBadRequest && r.Status != http.StatusUnauthorized {
				t.Fatalf("rejection status %d", r.Status)
			}
			return
		}
		if res == nil || string(res.Ack.Body) != "SUCCESS" {
			t.Fatalf("accepted without the SUCCESS ack: %+v", res)
		}
		if res.Unknown != (len(res.Events) == 0) || len(res.Events) > 1 {
			t.Fatalf("Unknown = %v with %d events", res.Unknown, len(res.Events))
		}
		if res.Authorize != nil {
			_, _ = res.Authorize(true), res.Authorize(false)
		}
		for _, ev := range res.Events {
			var amounts []*cardsv1alpha1.Money
			if tx := ev.Transaction; tx != nil {
				amounts = append(amounts, tx.Amount, tx.BillingAmount, tx.Fee)
			}
			if a := ev.Authorization; a != nil {
				amounts = append(amounts, &a.Amount)
			}
			if ch := ev.Challenge; ch != nil {
				amounts = append(amounts, ch.Amount)
			}
			for _, m := range amounts {
				if m != nil && strings.HasPrefix(string(m.Value), "-") {
					t.Fatalf("negative Money %+v in %s", *m, deep(ev))
				}
			}
			if c := ev.Card; c != nil && c.Number != nil && (len(c.Number.BIN) > 6 || len(c.Number.Last4) > 4) {
				t.Fatalf("card number not reduced: %+v", *c.Number)
			}
		}
	})
}

// pointerAddr matches the addresses %+v prints for pointers: they are random hex and could contain a secret's
// digits by chance, so the leak checks leave them out.
var pointerAddr = regexp.MustCompile(`0x[0-9a-f]+`)
