package prepaidify

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

// Luhn-valid test card numbers, so pan.Find would spot them in the output.
const (
	visaPAN = "4111111111111111"
	mcPAN   = "5555555555554444"
)

func endpoint(mods ...func(*cardsv1alpha1.Verification)) *endpointconfig.Resolved {
	v := &cardsv1alpha1.Verification{AllowUnauthenticated: true}
	for _, m := range mods {
		m(v)
	}
	return &endpointconfig.Resolved{
		Endpoint: &cardsv1alpha1.WebhookEndpoint{Spec: cardsv1alpha1.WebhookEndpointSpec{
			Provider: cardsv1alpha1.ProviderPrepaidify, Verification: v}},
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

func sample(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func usd(v string) *cardsv1alpha1.Money {
	return &cardsv1alpha1.Money{Value: cardsv1alpha1.Decimal(v), Currency: "USD"}
}
func eur(v string) *cardsv1alpha1.Money {
	return &cardsv1alpha1.Money{Value: cardsv1alpha1.Decimal(v), Currency: "EUR"}
}

func utc(y int, mo time.Month, d, h, mi, s int) time.Time {
	return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
}

type tcase struct {
	name  string
	body  string
	etype string
	ack   adapter.Answer
	want  []event.Event
}

var cases = []tcase{
	{name: "CREATE_CARD sample (full PAN with spaces, cvc, cents, epoch seconds)", etype: "CREATE_CARD", ack: virtualAck,
		body: "@prepaidify-create-card.json",
		want: []event.Event{{Type: "CREATE_CARD", ID: "ev_7a1f0c2e9b", OccurredAt: utc(2020, 8, 19, 14, 36, 19), CardID: "c_sdasdf1", HolderID: "u_sdasdf1",
			Card: &event.Card{Phase: cardsv1alpha1.CardActive, ProviderStatus: "ACTIVE", Type: cardsv1alpha1.CardVirtual,
				Number: &cardsv1alpha1.MaskedNumber{BIN: "400000", Last4: "0096"}, Expiry: &cardsv1alpha1.Expiry{Month: 5, Year: 2021},
				References: map[string]string{"cardHolderId": "ch_sdasdf1", "cardSeqNo": "CAEE7QW", "cardBin": "vab_069af8a792ad", "orderNo": "999"},
				Amounts:    map[string]cardsv1alpha1.Money{"deposit": *usd("1000.00"), "consume": *usd("0.00")}},
			Balance: &event.Balance{Available: *usd("1000.00")}}}},
	{name: "CREATE_CARD masked variant (ms string time, cardCustomerId, link)", etype: "CREATE_CARD", ack: virtualAck,
		body: `{"eventType":"CREATE_CARD","eventId":"ev_2","webhookSubscribeId":"wsb_01","customerTradeId":"ct_9",
			"data":{"cardHolderId":"ch_2","cardCustomerId":"cust_2","cardId":"c_2","number":"•••• 7907","cvc":"•••","cardBin":"vab_1",
			"last4":"7907","status":"ACTIVE","statusText":"active","expYear":"27","expMonth":"09","deposit":5000,"consume":2450,"balance":"2550",
			"gmtCreate":"1700000000123","link":"https://cards.example/secret/abc","monthlyFeeCard":true,"orderNo":"o2"}}`,
		want: []event.Event{{Type: "CREATE_CARD", ID: "ev_2", OccurredAt: time.UnixMilli(1700000000123).UTC(), CardID: "c_2", HolderID: "ch_2",
			Card: &event.Card{Phase: cardsv1alpha1.CardActive, ProviderStatus: "ACTIVE", Reason: "active", Type: cardsv1alpha1.CardVirtual,
				Number: &cardsv1alpha1.MaskedNumber{Last4: "7907"}, Expiry: &cardsv1alpha1.Expiry{Month: 9, Year: 2027},
				References: map[string]string{"cardHolderId": "ch_2", "cardCustomerId": "cust_2", "cardBin": "vab_1", "orderNo": "o2", "customerTradeId": "ct_9"},
				Amounts:    map[string]cardsv1alpha1.Money{"deposit": *usd("50.00"), "consume": *usd("24.50")}},
			Balance: &event.Balance{Available: *usd("25.50")}}}},
	{name: "CREATE_CARD_FAIL", etype: "CREATE_CARD_FAIL", ack: virtualAck,
		body: `{"eventType":"CREATE_CARD_FAIL","eventId":"ev_3","webhookSubscribeId":"wsb_01","data":{"cardId":"c_3","userId":"u_3","orderNo":"999"}}`,
		want: []event.Event{{Type: "CREATE_CARD_FAIL", ID: "ev_3", CardID: "c_3", HolderID: "u_3",
			Card:    &event.Card{Phase: cardsv1alpha1.CardFailed, Type: cardsv1alpha1.CardVirtual, References: map[string]string{"orderNo": "999"}},
			Failure: &event.Failure{Kind: "CREATE_CARD_FAIL", Reference: "999"}}}},
	{name: "RISK_CONTROL freezes every listed card, numbers dropped", etype: "RISK_CONTROL", ack: virtualAck,
		body: `{"eventType":"RISK_CONTROL","eventId":"ev_4","webhookSubscribeId":"wsb_01","data":{"userId":"u_4","cardIds":["c_41","c_42","c_41"],
			"numbers":["` + visaPAN + `","5555 5555 5555 4444"],"type":"FREEZE_CARD","riskControlReasonType":"HIGH REFUSE RATE",
			"reason":"too many declines","gmtCreate":1700000000}}`,
		want: []event.Event{
			{Type: "RISK_CONTROL", ID: "ev_4", OccurredAt: utc(2023, 11, 14, 22, 13, 20), CardID: "c_41", HolderID: "u_4",
				Card: &event.Card{Phase: cardsv1alpha1.CardFrozen, ProviderStatus: "FREEZE_CARD", Reason: "HIGH_REFUSE_RATE: too many declines"}},
			{Type: "RISK_CONTROL", ID: "ev_4", OccurredAt: utc(2023, 11, 14, 22, 13, 20), CardID: "c_42", HolderID: "u_4",
				Card: &event.Card{Phase: cardsv1alpha1.CardFrozen, ProviderStatus: "FREEZE_CARD", Reason: "HIGH_REFUSE_RATE: too many declines"}}}},
	{name: "RISK_CONTROL FREEZE_ACCOUNT freezes the listed card (number paired) and the holder's account", etype: "RISK_CONTROL", ack: virtualAck,
		body: `{"eventType":"RISK_CONTROL","eventId":"ev_5","webhookSubscribeId":"wsb_01","data":{"userId":"u_5","cardIds":["c_5"],
			"numbers":["` + mcPAN + `"],"type":"FREEZE_ACCOUNT","riskControlReasonType":"CARD_OVERDRAW"}}`,
		want: []event.Event{
			{Type: "RISK_CONTROL", ID: "ev_5", CardID: "c_5", HolderID: "u_5",
				Card: &event.Card{Phase: cardsv1alpha1.CardFrozen, ProviderStatus: "FREEZE_ACCOUNT", Reason: "CARD_OVERDRAW",
					Number: &cardsv1alpha1.MaskedNumber{BIN: "555555", Last4: "4444"}}},
			{Type: "RISK_CONTROL", ID: "ev_5", HolderID: "u_5", Risk: &event.RiskAction{Action: "FREEZE_ACCOUNT", Reason: "CARD_OVERDRAW"},
				Card: &event.Card{Phase: cardsv1alpha1.CardFrozen, ProviderStatus: "FREEZE_ACCOUNT", Reason: "CARD_OVERDRAW"}}}},
	{name: "RISK_CONTROL FREEZE_ACCOUNT naming no card freezes the holder's cards", etype: "RISK_CONTROL", ack: virtualAck,
		body: `{"eventType":"RISK_CONTROL","eventId":"ev_6","webhookSubscribeId":"wsb_01","data":{"userId":"u_6","cardIds":[],"type":"FREEZE_ACCOUNT"}}`,
		want: []event.Event{{Type: "RISK_CONTROL", ID: "ev_6", HolderID: "u_6", Risk: &event.RiskAction{Action: "FREEZE_ACCOUNT"},
			Card: &event.Card{Phase: cardsv1alpha1.CardFrozen, ProviderStatus: "FREEZE_ACCOUNT"}}}},
	{name: "RISK_CONTROL FREEZE_CARD naming no card is recorded on the holder and freezes none", etype: "RISK_CONTROL", ack: virtualAck,
		body: `{"eventType":"RISK_CONTROL","eventId":"ev_6b","webhookSubscribeId":"wsb_01","data":{"userId":"u_6","type":"FREEZE_CARD","reason":"r"}}`,
		want: []event.Event{{Type: "RISK_CONTROL", ID: "ev_6b", HolderID: "u_6", Risk: &event.RiskAction{Action: "FREEZE_CARD", Reason: "r"}}}},
	{name: "RISK_CONTROL naming neither card nor holder stores nothing", etype: "RISK_CONTROL", ack: virtualAck,
		body: `{"eventType":"RISK_CONTROL","eventId":"ev_6c","webhookSubscribeId":"wsb_01","data":{"cardIds":[],"type":"FREEZE_ACCOUNT"}}`},
	{name: "DELETE_CARD_SUCCESS with balance returned (positive refundAmount, card amount)", etype: "DELETE_CARD_SUCCESS", ack: virtualAck,
		body: `{"eventType":"DELETE_CARD_SUCCESS","eventId":"ev_7","webhookSubscribeId":"wsb_01","data":{"cardId":"c_7","userId":"u_7",
			"type":"USER_DELETE","reason":"User Delete","refundAmount":1200}}`,
		want: []event.Event{{Type: "DELETE_CARD_SUCCESS", ID: "ev_7", CardID: "c_7", HolderID: "u_7",
			Card: &event.Card{Phase: cardsv1alpha1.CardClosed, ProviderStatus: "USER_DELETE", Reason: "User Delete",
				Amounts: map[string]cardsv1alpha1.Money{"refundAmount": *usd("12.00")}},
			Balance: &event.Balance{Available: *usd("0.00")}}}},
	{name: "DELETE_CARD_SUCCESS with overdraft covered (negative refundAmount kept signed)", etype: "DELETE_CARD_SUCCESS", ack: virtualAck,
		body: `{"eventType":"DELETE_CARD_SUCCESS","eventId":"ev_8","webhookSubscribeId":"wsb_01","data":{"cardId":"c_8","userId":"u_8",
			"type":"RISK_CONTROL_DELETE","reason":"overdrawn","refundAmount":"-350"}}`,
		want: []event.Event{{Type: "DELETE_CARD_SUCCESS", ID: "ev_8", CardID: "c_8", HolderID: "u_8",
			Card: &event.Card{Phase: cardsv1alpha1.CardClosed, ProviderStatus: "RISK_CONTROL_DELETE", Reason: "overdrawn",
				Amounts: map[string]cardsv1alpha1.Money{"refundAmount": *usd("-3.50")}},
			Balance: &event.Balance{Available: *usd("0.00")}}}},
	{name: "DELETE_CARD_SUCCESS with zero refund", etype: "DELETE_CARD_SUCCESS", ack: virtualAck,
		body: `{"eventType":"DELETE_CARD_SUCCESS","eventId":"ev_9","webhookSubscribeId":"wsb_01","data":{"cardId":"c_9","userId":"u_9","type":"USER_DELETE","refundAmount":0}}`,
		want: []event.Event{{Type: "DELETE_CARD_SUCCESS", ID: "ev_9", CardID: "c_9", HolderID: "u_9",
			Card: &event.Card{Phase: cardsv1alpha1.CardClosed, ProviderStatus: "USER_DELETE",
				Amounts: map[string]cardsv1alpha1.Money{"refundAmount": *usd("0.00")}},
			Balance: &event.Balance{Available: *usd("0.00")}}}},
	{name: "DELETE_CARD_SUCCESS without refundAmount leaves the balance alone", etype: "DELETE_CARD_SUCCESS", ack: virtualAck,
		body: `{"eventType":"DELETE_CARD_SUCCESS","eventId":"ev_9b","webhookSubscribeId":"wsb_01","data":{"cardId":"c_9","userId":"u_9","type":"USER_DELETE"}}`,
		want: []event.Event{{Type: "DELETE_CARD_SUCCESS", ID: "ev_9b", CardID: "c_9", HolderID: "u_9",
			Card: &event.Card{Phase: cardsv1alpha1.CardClosed, ProviderStatus: "USER_DELETE"}}}},
	{name: "transaction PENDING (pre-auth in cents, masked number)", etype: TypeTransaction, ack: virtualAck,
		body: `{"email":"holder@example.com","transactionId":"t_1","cardId":"c_1","cardNumber":"556735XXXXXX0737","cardSeqNo":"CX1",
			"desp":"FACEBK UYFYREF3S2 fb.me/ads IRL","reason":null,"preAuthAmount":-1992,"preAuthCurrency":"USD","preAuthTime":"2023-12-04 18:20:10",
			"transactionAmount":null,"transactionCurrency":null,"transactionTime":null,"status":"PENDING",
			"gmtCreate":"2023-12-04 18:20:11","gmtModified":"2023-12-04 18:20:12"}`,
		want: []event.Event{{Type: TypeTransaction, ID: "t_1:PENDING:2023-12-04 18:20:12", OccurredAt: utc(2023, 12, 4, 18, 20, 12), CardID: "c_1",
			Card: &event.Card{Number: &cardsv1alpha1.MaskedNumber{BIN: "556735", Last4: "0737"}, References: map[string]string{"cardSeqNo": "CX1"}},
			Transaction: &event.Transaction{ID: "t_1", Type: cardsv1alpha1.TransactionAuthorization, Phase: cardsv1alpha1.TransactionPending,
				ProviderStatus: "PENDING", Direction: cardsv1alpha1.Debit, Amount: usd("19.92"), Description: "FACEBK UYFYREF3S2 fb.me/ads IRL",
				OccurredAt: utc(2023, 12, 4, 18, 20, 10)}}}},
	{name: "transaction COMPLETE (settled amount in major units, full PAN reduced, epoch ms modified)", etype: TypeTransaction, ack: virtualAck,
		body: `{"transactionId":"t_1","cardId":"c_1","cardNumber":"` + visaPAN + `","desp":"FACEBK","preAuthAmount":-1992,"preAuthCurrency":"USD",
			"preAuthTime":"2023-12-04 18:20:10","transactionAmount":"-20.05","transactionCurrency":"USD","transactionTime":"2023-12-06 02:00:00",
			"status":"COMPLETE","gmtCreate":"2023-12-04 18:20:11","gmtModified":1701828000000}`,
		want: []event.Event{{Type: TypeTransaction, ID: "t_1:COMPLETE:1701828000000", OccurredAt: utc(2023, 12, 6, 2, 0, 0), CardID: "c_1",
			Card: &event.Card{Number: &cardsv1alpha1.MaskedNumber{BIN: "411111", Last4: "1111"}},
			Transaction: &event.Transaction{ID: "t_1", Type: cardsv1alpha1.TransactionPurchase, Phase: cardsv1alpha1.TransactionCompleted,
				ProviderStatus: "COMPLETE", Direction: cardsv1alpha1.Debit, Amount: usd("20.05"), Description: "FACEBK",
				OccurredAt: utc(2023, 12, 6, 2, 0, 0)}}}},
	{name: "transaction EXPIRED", etype: TypeTransaction, ack: virtualAck,
		body: `{"transactionId":"t_2","cardId":"c_1","preAuthAmount":-500,"preAuthCurrency":"USD","status":"EXPIRED","gmtModified":"2023-12-11 00:00:00"}`,
		want: []event.Event{{Type: TypeTransaction, ID: "t_2:EXPIRED:2023-12-11 00:00:00", OccurredAt: utc(2023, 12, 11, 0, 0, 0), CardID: "c_1",
			Transaction: &event.Transaction{ID: "t_2", Type: cardsv1alpha1.TransactionAuthorization, Phase: cardsv1alpha1.TransactionExpired,
				ProviderStatus: "EXPIRED", Direction: cardsv1alpha1.Debit, Amount: usd("5.00")}}}},
	{name: "transaction REVERSED", etype: TypeTransaction, ack: virtualAck,
		body: `{"transactionId":"t_3","cardId":"c_1","preAuthAmount":-500,"preAuthCurrency":"USD","status":"REVERSED","gmtModified":"2023-12-05 00:00:00"}`,
		want: []event.Event{{Type: TypeTransaction, ID: "t_3:REVERSED:2023-12-05 00:00:00", OccurredAt: utc(2023, 12, 5, 0, 0, 0), CardID: "c_1",
			Transaction: &event.Transaction{ID: "t_3", Type: cardsv1alpha1.TransactionAuthorization, Phase: cardsv1alpha1.TransactionReversed,
				ProviderStatus: "REVERSED", Direction: cardsv1alpha1.Debit, Amount: usd("5.00")}}}},
	{name: "transaction DECLINED with reason", etype: TypeTransaction, ack: virtualAck,
		body: `{"transactionId":"t_4","cardId":"c_1","preAuthAmount":-99999,"preAuthCurrency":"USD","status":"DECLINED","reason":"Insufficient balance","gmtModified":"2023-12-05 00:00:00"}`,
		want: []event.Event{{Type: TypeTransaction, ID: "t_4:DECLINED:2023-12-05 00:00:00", OccurredAt: utc(2023, 12, 5, 0, 0, 0), CardID: "c_1",
			Transaction: &event.Transaction{ID: "t_4", Type: cardsv1alpha1.TransactionAuthorization, Phase: cardsv1alpha1.TransactionDeclined,
				ProviderStatus: "DECLINED", Direction: cardsv1alpha1.Debit, Amount: usd("999.99"), FailureReason: "Insufficient balance"}}}},
	{name: "transaction REFUND", etype: TypeTransaction, ack: virtualAck,
		body: `{"transactionId":"t_5","cardId":"c_1","transactionAmount":1500,"transactionCurrency":"USD","transactionTime":"2023-12-07 08:00:00","status":"REFUND","gmtModified":"2023-12-07 08:00:01"}`,
		want: []event.Event{{Type: TypeTransaction, ID: "t_5:REFUND:2023-12-07 08:00:01", OccurredAt: utc(2023, 12, 7, 8, 0, 1), CardID: "c_1",
			Transaction: &event.Transaction{ID: "t_5", Type: cardsv1alpha1.TransactionRefund, Phase: cardsv1alpha1.TransactionCompleted,
				ProviderStatus: "REFUND", Direction: cardsv1alpha1.Credit, Amount: usd("15.00"), OccurredAt: utc(2023, 12, 7, 8, 0, 0)}}}},
	{name: "transaction FEE without currency (card currency)", etype: TypeTransaction, ack: virtualAck,
		body: `{"transactionId":"t_6","cardId":"c_1","transactionAmount":"-50","status":"FEE","desp":"cross-border fee","gmtCreate":"2023-12-07 08:00:00"}`,
		want: []event.Event{{Type: TypeTransaction, ID: "t_6:FEE", OccurredAt: utc(2023, 12, 7, 8, 0, 0), CardID: "c_1",
			Transaction: &event.Transaction{ID: "t_6", Type: cardsv1alpha1.TransactionFee, Phase: cardsv1alpha1.TransactionCompleted,
				ProviderStatus: "FEE", Direction: cardsv1alpha1.Debit, Amount: usd("0.50"), Description: "cross-border fee"}}}},
	{name: "transaction MONTHLY_FEE", etype: TypeTransaction, ack: virtualAck,
		body: `{"transactionId":"t_7","cardId":"c_1","transactionAmount":-100,"transactionCurrency":"USD","transactionTime":"2024-01-01 00:00:00","status":"MONTHLY_FEE"}`,
		want: []event.Event{{Type: TypeTransaction, ID: "t_7:MONTHLY_FEE", OccurredAt: utc(2024, 1, 1, 0, 0, 0), CardID: "c_1",
			Transaction: &event.Transaction{ID: "t_7", Type: cardsv1alpha1.TransactionFee, Phase: cardsv1alpha1.TransactionCompleted,
				ProviderStatus: "MONTHLY_FEE", Direction: cardsv1alpha1.Debit, Amount: usd("1.00"), Description: "monthly fee",
				OccurredAt: utc(2024, 1, 1, 0, 0, 0)}}}},
	{name: "transaction in an envelope (eventId is the ID)", etype: TypeTransaction, ack: virtualAck,
		body: `{"eventType":"TRANSACTION","eventId":"ev_10","webhookSubscribeId":"wsb_01","data":{"transactionId":"t_8","userId":"u_1","cardId":"c_1",
			"cardCustomerId":"","cardNumber":"556735XXXXXX0737","preAuthAmount":-1992,"preAuthCurrency":"USD","preAuthTime":1701714010000,"status":"PENDING","gmtModified":1701714011000}}`,
		want: []event.Event{{Type: TypeTransaction, ID: "ev_10", OccurredAt: time.UnixMilli(1701714011000).UTC(), CardID: "c_1", HolderID: "u_1",
			Card: &event.Card{Number: &cardsv1alpha1.MaskedNumber{BIN: "556735", Last4: "0737"}},
			Transaction: &event.Transaction{ID: "t_8", Type: cardsv1alpha1.TransactionAuthorization, Phase: cardsv1alpha1.TransactionPending,
				ProviderStatus: "PENDING", Direction: cardsv1alpha1.Debit, Amount: usd("19.92"), OccurredAt: time.UnixMilli(1701714010000).UTC()}}}},
	{name: "bank card payment settled in another currency", etype: TypeBankCardTransaction, ack: physicalAck,
		body: `{"cardId":"pc_1","cardNo":"535522******1234","currency":"EUR","amount":10.5,"fee":0.2,"currencyTxn":"USD","txnAmount":11.4,
			"businessDate":"2024-08-09","tradeId":"tr_1","authCode":"A1B2C3","tradeType":151,"tradeStatus":1,"tradeSrc":"S","remark":"AMAZON EU"}`,
		want: []event.Event{{Type: TypeBankCardTransaction, ID: "tr_1:1:S", OccurredAt: utc(2024, 8, 9, 0, 0, 0).Add(3 * time.Microsecond), CardID: "pc_1",
			Card: &event.Card{Type: cardsv1alpha1.CardPhysical, Number: &cardsv1alpha1.MaskedNumber{BIN: "535522", Last4: "1234"}},
			Transaction: &event.Transaction{ID: "tr_1", Type: cardsv1alpha1.TransactionPurchase, Phase: cardsv1alpha1.TransactionCompleted,
				ProviderStatus: "1", Direction: cardsv1alpha1.Debit, Amount: usd("11.40"), BillingAmount: eur("10.50"), Fee: eur("0.20"),
				Description: "AMAZON EU", AuthorizationID: "A1B2C3", OccurredAt: utc(2024, 8, 9, 0, 0, 0), References: map[string]string{"tradeType": "151", "tradeSrc": "S"}}}}},
	{name: "bank card pre-authorization (authorization record)", etype: TypeBankCardTransaction, ack: physicalAck,
		body: `{"cardId":"pc_1","cardNo":"535522******1234","currency":"EUR","amount":"25.00","fee":0,"businessDate":"20240809","tradeId":"tr_2","tradeType":"150","tradeStatus":"1","tradeSrc":"A"}`,
		want: []event.Event{{Type: TypeBankCardTransaction, ID: "tr_2:1:A", OccurredAt: utc(2024, 8, 9, 0, 0, 0), CardID: "pc_1",
			Card: &event.Card{Type: cardsv1alpha1.CardPhysical, Number: &cardsv1alpha1.MaskedNumber{BIN: "535522", Last4: "1234"}},
			Transaction: &event.Transaction{ID: "tr_2", Type: cardsv1alpha1.TransactionAuthorization, Phase: cardsv1alpha1.TransactionPending,
				ProviderStatus: "1", Direction: cardsv1alpha1.Debit, Amount: eur("25.00"), Fee: eur("0.00"), OccurredAt: utc(2024, 8, 9, 0, 0, 0),
				References: map[string]string{"tradeType": "150", "tradeSrc": "A"}}}}},
	{name: "bank card recharge of a USDT account", etype: TypeBankCardTransaction, ack: physicalAck,
		body: `{"cardId":"pc_2","cardNo":"535522******9876","currency":"USDT","amount":100.123456,"fee":1.5,"businessDate":"2024-08-10","tradeId":"tr_3","tradeType":100,"tradeStatus":1,"tradeSrc":"S"}`,
		want: []event.Event{{Type: TypeBankCardTransaction, ID: "tr_3:1:S", OccurredAt: utc(2024, 8, 10, 0, 0, 0).Add(3 * time.Microsecond), CardID: "pc_2",
			Card: &event.Card{Type: cardsv1alpha1.CardPhysical, Number: &cardsv1alpha1.MaskedNumber{BIN: "535522", Last4: "9876"}},
			Transaction: &event.Transaction{ID: "tr_3", Type: cardsv1alpha1.TransactionTopUp, Phase: cardsv1alpha1.TransactionCompleted,
				ProviderStatus: "1", Direction: cardsv1alpha1.Credit, Crypto: &cardsv1alpha1.CryptoPayment{Asset: "USDT", Amount: "100.123456", Fee: "1.5"},
				OccurredAt: utc(2024, 8, 10, 0, 0, 0), References: map[string]string{"tradeType": "100", "tradeSrc": "S"}}}}},
	{name: "bank card withdrawal reversed", etype: TypeBankCardTransaction, ack: physicalAck,
		body: `{"cardId":"pc_1","cardNo":"535522******1234","currency":"EUR","amount":50,"fee":1,"businessDate":"2024-08-11","tradeId":"tr_4","tradeType":110,"tradeStatus":2,"tradeSrc":"S"}`,
		want: []event.Event{{Type: TypeBankCardTransaction, ID: "tr_4:2:S", OccurredAt: utc(2024, 8, 11, 0, 0, 0).Add(5 * time.Microsecond), CardID: "pc_1",
			Card: &event.Card{Type: cardsv1alpha1.CardPhysical, Number: &cardsv1alpha1.MaskedNumber{BIN: "535522", Last4: "1234"}},
			Transaction: &event.Transaction{ID: "tr_4", Type: cardsv1alpha1.TransactionWithdrawal, Phase: cardsv1alpha1.TransactionReversed,
				ProviderStatus: "2", Direction: cardsv1alpha1.Debit, Amount: eur("50.00"), Fee: eur("1.00"), OccurredAt: utc(2024, 8, 11, 0, 0, 0),
				References: map[string]string{"tradeType": "110", "tradeSrc": "S"}}}}},
	{name: "bank card payment refunded", etype: TypeBankCardTransaction, ack: physicalAck,
		body: `{"cardId":"pc_1","cardNo":"535522******1234","currency":"EUR","amount":12.34,"fee":0,"businessDate":"2024-08-12","tradeId":"tr_5","tradeType":151,"tradeStatus":10}`,
		want: []event.Event{{Type: TypeBankCardTransaction, ID: "tr_5:10", OccurredAt: utc(2024, 8, 12, 0, 0, 0).Add(4 * time.Microsecond), CardID: "pc_1",
			Card: &event.Card{Type: cardsv1alpha1.CardPhysical, Number: &cardsv1alpha1.MaskedNumber{BIN: "535522", Last4: "1234"}},
			Transaction: &event.Transaction{ID: "tr_5", Type: cardsv1alpha1.TransactionPurchase, Phase: cardsv1alpha1.TransactionRefunded,
				ProviderStatus: "10", Direction: cardsv1alpha1.Debit, Amount: eur("12.34"), Fee: eur("0.00"), OccurredAt: utc(2024, 8, 12, 0, 0, 0),
				References: map[string]string{"tradeType": "151"}}}}},
	{name: "bank card fee with an undocumented status is Unknown", etype: TypeBankCardTransaction, ack: physicalAck,
		body: `{"cardId":"pc_1","cardNo":"535522******1234","currency":"EUR","amount":-2,"fee":0,"tradeId":"tr_6","tradeType":500,"tradeStatus":3}`,
		want: []event.Event{{Type: TypeBankCardTransaction, ID: "tr_6:3", CardID: "pc_1",
			Card: &event.Card{Type: cardsv1alpha1.CardPhysical, Number: &cardsv1alpha1.MaskedNumber{BIN: "535522", Last4: "1234"}},
			Transaction: &event.Transaction{ID: "tr_6", Type: cardsv1alpha1.TransactionFee, Phase: cardsv1alpha1.TransactionUnknown, ProviderStatus: "3",
				Direction: cardsv1alpha1.Debit, Amount: eur("2.00"), Fee: eur("0.00"), References: map[string]string{"tradeType": "500"}}}}},
	{name: "bank card settlement adjustment takes its direction from the sign", etype: TypeBankCardTransaction, ack: physicalAck,
		body: `{"cardId":"pc_1","cardNo":"535522******1234","currency":"EUR","amount":-0.37,"fee":0,"tradeId":"tr_7","tradeType":200,"tradeStatus":1,"tradeSrc":"S"}`,
		want: []event.Event{{Type: TypeBankCardTransaction, ID: "tr_7:1:S", CardID: "pc_1",
			Card: &event.Card{Type: cardsv1alpha1.CardPhysical, Number: &cardsv1alpha1.MaskedNumber{BIN: "535522", Last4: "1234"}},
			Transaction: &event.Transaction{ID: "tr_7", Type: cardsv1alpha1.TransactionCorrection, Phase: cardsv1alpha1.TransactionCompleted,
				ProviderStatus: "1", Direction: cardsv1alpha1.Debit, Amount: eur("0.37"), Fee: eur("0.00"), References: map[string]string{"tradeType": "200", "tradeSrc": "S"}}}}},
	{name: "cardholder audit approved (personal data dropped)", etype: TypeCardholderAudit, ack: physicalAck,
		body: `{"holderId":"100960","auditStatus":2,"errMsg":"Approved","mobile":"+8618666666666","lastName":"Doe","firstName":"John","idnoType":2,"idno":"ABC123456"}`,
		want: []event.Event{{Type: TypeCardholderAudit, ID: "100960:2", HolderID: "100960", KYC: &event.KYC{State: cardsv1alpha1.KYCApproved, Reason: "Approved"}}}},
	{name: "cardholder audit pending review", etype: TypeCardholderAudit, ack: physicalAck,
		body: `{"holderId":"100961","auditStatus":"0","errMsg":"Pending review"}`,
		want: []event.Event{{Type: TypeCardholderAudit, ID: "100961:0", HolderID: "100961", KYC: &event.KYC{State: cardsv1alpha1.KYCPending, Reason: "Pending review"}}}},
	{name: "cardholder audit under review", etype: TypeCardholderAudit, ack: physicalAck,
		body: `{"holderId":"100962","auditStatus":1,"errMsg":""}`,
		want: []event.Event{{Type: TypeCardholderAudit, ID: "100962:1", HolderID: "100962", KYC: &event.KYC{State: cardsv1alpha1.KYCPending}}}},
	{name: "cardholder audit rejected", etype: TypeCardholderAudit, ack: physicalAck,
		body: `{"holderId":"100963","auditStatus":3,"errMsg":"document expired","lastName":"Roe"}`,
		want: []event.Event{{Type: TypeCardholderAudit, ID: "100963:3", HolderID: "100963", KYC: &event.KYC{State: cardsv1alpha1.KYCRejected, Reason: "document expired"}}}},
	{name: "cardholder audit incomplete", etype: TypeCardholderAudit, ack: physicalAck,
		body: `{"holderId":"100964","auditStatus":4,"errMsg":"upload a selfie"}`,
		want: []event.Event{{Type: TypeCardholderAudit, ID: "100964:4", HolderID: "100964", KYC: &event.KYC{State: cardsv1alpha1.KYCUnverified, Reason: "upload a selfie"}}}},
	// requestNo names the KYC request, never the holder: without a holder ID only a rejection is reported.
	{name: "KYC approved without holder: nothing to attach", etype: TypeKYCResult, ack: virtualAck, body: `{"kycStatus":"approved","requestNo":"123"}`},
	{name: "KYC rejected without holder: a failure with requestNo", etype: TypeKYCResult, ack: virtualAck, body: `{"kycStatus":"rejected","requestNo":"124"}`,
		want: []event.Event{{Type: TypeKYCResult, ID: "124:rejected", Failure: &event.Failure{Kind: TypeKYCResult, ProviderStatus: "rejected", Reference: "124"}}}},
	{name: "KYC reviewing without holder", etype: TypeKYCResult, ack: virtualAck, body: `{"kycStatus":"REVIEWING","requestNo":"125"}`},
	{name: "KYC init with a holder ID", etype: TypeKYCResult, ack: virtualAck, body: `{"kycStatus":"init","requestNo":126,"holderId":"100964"}`,
		want: []event.Event{{Type: TypeKYCResult, ID: "126:init", HolderID: "100964", KYC: &event.KYC{State: cardsv1alpha1.KYCUnverified}}}},
	{name: "KYC rejected with a holder ID", etype: TypeKYCResult, ack: virtualAck, body: `{"kycStatus":"Rejected","requestNo":"127","userId":"u_1"}`,
		want: []event.Event{{Type: TypeKYCResult, ID: "127:rejected", HolderID: "u_1", KYC: &event.KYC{State: cardsv1alpha1.KYCRejected},
			Failure: &event.Failure{Kind: TypeKYCResult, ProviderStatus: "Rejected", Reference: "127"}}}},
}

func body(t testing.TB, c tcase) string {
	if strings.HasPrefix(c.body, "@") {
		return sample(t, c.body[1:])
	}
	return c.body
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
			if res.Unknown {
				t.Fatal("known callback decoded as unknown")
			}
			if res.EventType != c.etype {
				t.Errorf("EventType = %q, want %q", res.EventType, c.etype)
			}
			if res.Ack.Status != http.StatusOK || string(res.Ack.Body) != string(c.ack.Body) || res.Ack.ContentType != c.ack.ContentType {
				t.Errorf("Ack = %d %s %q, want %d %s %q", res.Ack.Status, res.Ack.ContentType, res.Ack.Body, c.ack.Status, c.ack.ContentType, c.ack.Body)
			}
			if res.DeliveryID != "" {
				t.Errorf("DeliveryID = %q: Prepaidify sends no nonce", res.DeliveryID)
			}
			if got, want := asJSON(t, res.Events), asJSON(t, c.want); got != want {
				t.Errorf("events:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestAcks(t *testing.T) {
	if string(physicalAck.Body) != `{"returnCode":"success"}` || physicalAck.ContentType != "application/json" || physicalAck.Status != 200 {
		t.Errorf("physical ack = %+v", physicalAck)
	}
	if virtualAck.Status != 200 {
		t.Errorf("virtual ack = %+v", virtualAck)
	}
}

func TestUnknownEnvelope(t *testing.T) {
	res, err := decode(t, `{"eventType":"CARD_RECHARGE_SUCCESS","eventId":"ev_x","webhookSubscribeId":"wsb_01","data":{"cardId":"c_1"}}`)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !res.Unknown || res.EventType != "CARD_RECHARGE_SUCCESS" || len(res.Events) != 0 || res.Ack.Status != 200 {
		t.Errorf("unknown envelope: %+v", res)
	}
}

func TestMalformed(t *testing.T) {
	for _, c := range []struct{ name, body, want string }{
		{"not JSON", `eventType=CREATE_CARD`, "not valid JSON"},
		{"array", `[{"eventType":"CREATE_CARD"}]`, "not valid JSON"},
		{"null", `null`, "not a JSON object"},
		{"unknown shape", `{"foo":"bar"}`, "expected a virtual card envelope"},
		{"empty eventType", `{"eventType":"","eventId":"e","data":{}}`, "no eventType"},
		{"no eventId", `{"eventType":"CREATE_CARD","data":{"cardId":"c"}}`, "CREATE_CARD: envelope has no eventId"},
		{"no data", `{"eventType":"CREATE_CARD","eventId":"e"}`, "CREATE_CARD: envelope has no data object"},
		{"data not an object", `{"eventType":"DELETE_CARD_SUCCESS","eventId":"e","data":"x"}`, "DELETE_CARD_SUCCESS: envelope has no data object"},
		{"no cardId", `{"eventType":"CREATE_CARD","eventId":"e","data":{"userId":"u"}}`, "CREATE_CARD: data has no cardId"},
		{"delete without cardId", `{"eventType":"DELETE_CARD_SUCCESS","eventId":"e","data":{"userId":"u"}}`, "DELETE_CARD_SUCCESS: data has no cardId"},
		{"bad deposit", `{"eventType":"CREATE_CARD","eventId":"e","data":{"cardId":"c","deposit":"1.5"}}`, "CREATE_CARD: deposit"},
		{"txn bad balance", `{"transactionId":"t","cardId":"c","status":"COMPLETE","balance":"x"}`, "TRANSACTION: balance"},
		{"bad expiry", `{"eventType":"CREATE_CARD","eventId":"e","data":{"cardId":"c","expYear":2027,"expMonth":13}}`, "CREATE_CARD: expiry 13/2027"},
		{"fractional cents", `{"eventType":"CREATE_CARD","eventId":"e","data":{"cardId":"c","balance":"10.5"}}`, "CREATE_CARD: balance"},
		{"bad gmtCreate", `{"eventType":"CREATE_CARD","eventId":"e","data":{"cardId":"c","gmtCreate":"yesterday"}}`, "CREATE_CARD: gmtCreate"},
		{"bad refund", `{"eventType":"DELETE_CARD_SUCCESS","eventId":"e","data":{"cardId":"c","refundAmount":"1e3"}}`, "DELETE_CARD_SUCCESS: refundAmount"},
		{"cardIds not a list", `{"eventType":"RISK_CONTROL","eventId":"e","data":{"cardIds":"c_1"}}`, "RISK_CONTROL: cardIds is not a list"},
		{"cardIds of objects", `{"eventType":"RISK_CONTROL","eventId":"e","data":{"cardIds":[{"id":"c_1"}]}}`, "RISK_CONTROL: cardIds is not a list"},
		{"txn without cardId", `{"transactionId":"t","status":"COMPLETE"}`, "TRANSACTION: transaction t has no cardId"},
		{"txn without id", `{"transactionId":"","cardId":"c","status":"COMPLETE"}`, "TRANSACTION: no transactionId"},
		{"txn bad amount", `{"transactionId":"t","cardId":"c","status":"COMPLETE","transactionAmount":"ten"}`, "TRANSACTION: transactionAmount"},
		{"txn bad currency", `{"transactionId":"t","cardId":"c","status":"COMPLETE","transactionAmount":"10","transactionCurrency":"DOLLARS"}`, "TRANSACTION: transactionAmount"},
		{"txn bad time", `{"transactionId":"t","cardId":"c","status":"COMPLETE","gmtModified":"soon"}`, "TRANSACTION: gmtModified"},
		{"enveloped txn without id", `{"eventType":"TRANSACTION","eventId":"e","data":{"cardId":"c","status":"PENDING"}}`, "TRANSACTION: no transactionId"},
		{"trade without id", `{"cardId":"pc","tradeType":151,"tradeStatus":1,"amount":1,"currency":"EUR"}`, "BANK_CARD_TRANSACTION: no tradeId"},
		{"trade without card", `{"tradeId":"tr","cardNo":"535522******1234","tradeType":151,"tradeStatus":1,"amount":1,"currency":"EUR"}`, "BANK_CARD_TRANSACTION: trade tr has no cardId"},
		{"trade without status", `{"tradeId":"tr","cardId":"pc","tradeType":151,"amount":1,"currency":"EUR"}`, "BANK_CARD_TRANSACTION: trade tr has no tradeStatus"},
		{"trade without amount", `{"tradeId":"tr","cardId":"pc","tradeType":151,"tradeStatus":1,"currency":"EUR"}`, "BANK_CARD_TRANSACTION: trade tr has no amount"},
		{"trade bad currency", `{"tradeId":"tr","cardId":"pc","tradeType":151,"tradeStatus":1,"amount":1,"currency":"€"}`, "BANK_CARD_TRANSACTION: currency"},
		{"trade bad fee", `{"tradeId":"tr","cardId":"pc","tradeType":151,"tradeStatus":1,"amount":1,"fee":"x","currency":"EUR"}`, "BANK_CARD_TRANSACTION: fee"},
		{"trade bad date", `{"tradeId":"tr","cardId":"pc","tradeType":151,"tradeStatus":1,"amount":1,"currency":"EUR","businessDate":"2024-13-45"}`, "BANK_CARD_TRANSACTION: businessDate"},
		{"trade bad txnAmount", `{"tradeId":"tr","cardId":"pc","tradeType":151,"tradeStatus":1,"amount":1,"currency":"EUR","currencyTxn":"USD","txnAmount":"?"}`, "BANK_CARD_TRANSACTION: txnAmount"},
		{"audit without holder", `{"auditStatus":2}`, "CARDHOLDER_AUDIT: no holderId"},
		{"kyc without requestNo", `{"kycStatus":"approved"}`, "KYC_RESULT: no requestNo"},
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

// Prepaidify signs nothing: authenticity is the receiver's job (source CIDRs, URL token). The adapter must
// decode the same way whatever the headers and whichever verification option the endpoint uses, and must not
// need the endpoint at all.
func TestNoSignatureToVerify(t *testing.T) {
	body := sample(t, "prepaidify-create-card.json")
	want := ""
	for i, req := range []*adapter.Request{
		{Body: []byte(body)},
		{Header: http.Header{"X-Signature": {"garbage"}}, Body: []byte(body), Endpoint: endpoint()},
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
		if res.Authorize != nil {
			t.Fatalf("request %d: Prepaidify has no real-time authorization", i)
		}
		got := asJSON(t, []any{res.EventType, res.Unknown, res.DeliveryID, res.Ack, res.Events})
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
		if err != nil || res.EventType != c.etype {
			t.Errorf("%s: round trip: %+v, %v", c.name, res, err)
		}
	}
}

// dump renders an event and every fact it points to.
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

var secretFields = regexp.MustCompile(`"(?:number|cardNumber|numbers|cvc|idno|mobile|firstName|lastName|email|link)"\s*:\s*(\[[^\]]*\]|"[^"]*")`)

func TestNoSecretsInEvents(t *testing.T) {
	bodies := []string{
		// Distinctive secrets, so a leak cannot be confused with another field.
		`{"eventType":"CREATE_CARD","eventId":"ev_s","webhookSubscribeId":"w","data":{"cardId":"c_s","userId":"u_s","number":"` + visaPAN + `",
			"cvc":"cvc-secret-739","cardBin":"vab_1","last4":"1111","balance":1,"expYear":2030,"expMonth":1,"link":"https://x.example/link-secret"}}`,
		`{"eventType":"RISK_CONTROL","eventId":"ev_r","webhookSubscribeId":"w","data":{"cardIds":["c_1"],"numbers":["` + visaPAN + `","` + mcPAN + `"],"type":"FREEZE_CARD"}}`,
		`{"transactionId":"t","cardId":"c","cardNumber":"5555 5555 5555 4444","email":"email-secret@example.com","status":"COMPLETE","transactionAmount":-1}`,
		`{"holderId":"h","auditStatus":3,"errMsg":"no","mobile":"mobile-secret","firstName":"first-secret","lastName":"last-secret","idnoType":2,"idno":"idno-secret"}`,
	}
	for _, c := range cases {
		bodies = append(bodies, body(t, c))
	}
	for _, b := range bodies {
		res, err := decode(t, b)
		if err != nil {
			t.Fatalf("Decode(%s): %v", b, err)
		}
		var secrets []string
		for _, m := range secretFields.FindAllStringSubmatch(b, -1) {
			for _, s := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
				if v := strings.TrimSpace(s[1]); len(v) >= 5 && !strings.Contains(v, "XXXX") && !strings.Contains(v, "•") {
					secrets = append(secrets, v)
				}
			}
		}
		secrets = append(secrets, pan.Find(b)...)
		for _, ev := range res.Events {
			out := dump(ev) + asJSON(t, ev)
			for _, s := range secrets {
				if strings.Contains(out, s) || strings.Contains(out, strings.ReplaceAll(s, " ", "")) {
					t.Errorf("event leaks %q: %s", s, out)
				}
			}
			if strings.Contains(strings.ToLower(out), "cvc") {
				t.Errorf("event mentions a CVC: %s", out)
			}
			for _, found := range pan.Find(out) {
				for _, s := range pan.Find(b) {
					if found == s {
						t.Errorf("event contains the full card number %s: %s", found, out)
					}
				}
			}
		}
	}
}

func seeds(t testing.TB) []string {
	var out []string
	for _, c := range cases {
		out = append(out, body(t, c))
	}
	return append(out,
		`{"eventType":"CARD_RECHARGE_SUCCESS","eventId":"e","data":{}}`,
		`{"eventType":"RISK_CONTROL","eventId":"e","data":{"cardIds":[1,"c",null]}}`,
		`{"foo":1}`, `[]`, `{"kycStatus":null,"auditStatus":1}`, `{"tradeId":"t","cardId":"c","tradeStatus":1,"amount":"1","currency":"USDT"}`)
}

var (
	binPattern   = regexp.MustCompile(`^[0-9]{6}([0-9]{2})?$`)
	last4Pattern = regexp.MustCompile(`^[0-9]{4}$`)
)

func FuzzDecode(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add([]byte(s))
	}
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
			if ev.CardID == "" && ev.HolderID == "" && (ev.Failure == nil || ev.Card != nil || ev.KYC != nil || ev.Risk != nil || ev.Balance != nil) {
				t.Fatalf("event names neither a card nor a holder and is not a lone failure: %+v", ev)
			}
			if ev.CardID == "" && (ev.Transaction != nil || ev.Balance != nil) {
				t.Fatalf("transaction or balance without a card: %+v", ev)
			}
			if c := ev.Card; c != nil && c.Number != nil {
				if c.Number.BIN != "" && !binPattern.MatchString(c.Number.BIN) || c.Number.Last4 != "" && !last4Pattern.MatchString(c.Number.Last4) {
					t.Fatalf("bad masked number %+v", c.Number)
				}
			}
			if tx := ev.Transaction; tx != nil {
				for _, m := range []*cardsv1alpha1.Money{tx.Amount, tx.BillingAmount, tx.Fee} {
					if m != nil && strings.HasPrefix(string(m.Value), "-") {
						t.Fatalf("signed amount %+v", m)
					}
				}
			}
		}
	})
}
