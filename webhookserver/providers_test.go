package webhookserver_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/config"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/pan"
	"github.com/cardplane/cardplane/internal/testenv"
	"github.com/cardplane/cardplane/webhookserver/adapters"
)

// applySampleEndpoints creates every sample WebhookEndpoint and Secret from config/samples in ns and returns
// the endpoint of each provider, Ready.
func applySampleEndpoints(t *testing.T, ns string) map[cardsv1alpha1.Provider]*cardsv1alpha1.WebhookEndpoint {
	t.Helper()
	ctx := context.Background()
	samples, err := config.Samples()
	if err != nil {
		t.Fatal(err)
	}
	byProvider := map[cardsv1alpha1.Provider]*cardsv1alpha1.WebhookEndpoint{}
	for _, s := range samples {
		kind := s.Object.GetKind()
		if kind != "Secret" && kind != "WebhookEndpoint" {
			continue
		}
		obj := s.Object.DeepCopy()
		obj.SetNamespace(ns)
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatalf("sample %s: %v", s.File, err)
		}
		if kind == "WebhookEndpoint" {
			ep := &cardsv1alpha1.WebhookEndpoint{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), ep); err != nil {
				t.Fatal(err)
			}
			byProvider[ep.Spec.Provider] = ep
		}
	}
	for _, ep := range byProvider {
		waitFor(t, "sample endpoint "+ep.Name+" Ready", func() bool {
			got := &cardsv1alpha1.WebhookEndpoint{}
			_ = k8s.Get(ctx, client.ObjectKeyFromObject(ep), got)
			for _, c := range got.Status.Conditions {
				if c.Type == cardsv1alpha1.ConditionReady && c.Status == "True" && c.ObservedGeneration == got.Generation {
					return true
				}
			}
			return false
		})
	}
	time.Sleep(300 * time.Millisecond) // the receiver reads endpoints from the manager's cache
	return byProvider
}

// secretKeys are the payload fields that carry CVCs and one-time codes in the providers' formats.
var secretKeys = map[string]bool{"cvc": true, "cvv": true, "cvv2": true, "3dsCode": true, "validateCode": true,
	"otp": true, "otp_value": true, "otpCode": true, "verificationCode": true}

// panKeys are the payload fields that carry card numbers.
var panKeys = map[string]bool{"number": true, "numbers": true, "cardNumber": true, "cardNo": true,
	"card_number": true, "cardPan": true, "pan": true}

// collectSecrets walks a payload for values that must never be stored: Luhn-valid card numbers in card-number
// fields, and the values of CVC and one-time-code fields (plus UPay NE_VERIFY "code" and BananaTech CARD_3DS
// "value").
func collectSecrets(v any, key string, markers map[string]bool, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			collectSecrets(val, k, markers, out)
		}
	case []any:
		for _, val := range x {
			collectSecrets(val, key, markers, out)
		}
	case string, json.Number:
		s := ""
		if str, ok := x.(string); ok {
			s = str
		} else {
			s = string(x.(json.Number))
		}
		if panKeys[key] {
			for _, p := range pan.Find(s) {
				out[p] = "card number in " + key
			}
		}
		if secretKeys[key] || (key == "code" && markers["NE_VERIFY"]) || (key == "value" && markers["CARD_3DS"]) {
			if s != "" && !strings.ContainsAny(s, "•*") {
				out[s] = key
			}
		}
	}
}

// TestEveryExampleCallbackIsStoredWithoutCardSecrets sends every example callback in config/samples/callbacks
// through the receiver with the provider's own signing or encryption, then dumps every object the receiver
// wrote, every Kubernetes Event and every log line, and looks for the card numbers, CVCs and one-time codes
// the callbacks carried.
func TestEveryExampleCallbackIsStoredWithoutCardSecrets(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	endpoints := applySampleEndpoints(t, ns)

	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "callbacks", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example callbacks: %v", err)
	}
	sort.Strings(files)
	secrets := map[string]string{}
	var raw []byte
	perProvider := map[cardsv1alpha1.Provider]int{}
	for _, f := range files {
		provider := cardsv1alpha1.Provider(strings.SplitN(filepath.Base(f), "-", 2)[0])
		ep := endpoints[provider]
		encode := adapters.Encoders()[provider]
		if ep == nil || encode == nil {
			t.Errorf("%s: no sample endpoint or encoder for provider %q", filepath.Base(f), provider)
			continue
		}
		payload, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var parsed any
		dec := json.NewDecoder(strings.NewReader(string(payload)))
		dec.UseNumber()
		if err := dec.Decode(&parsed); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		marker := map[string]bool{}
		for _, m := range []string{"NE_VERIFY", "CARD_3DS"} {
			marker[m] = strings.Contains(string(payload), `"`+m+`"`)
		}
		collectSecrets(parsed, "", marker, secrets)
		raw = append(raw, payload...)

		cfg, err := endpointconfig.Resolve(ctx, k8s, ep)
		if err != nil {
			t.Fatal(err)
		}
		h, body, err := encode(cfg, payload, time.Now())
		if err != nil {
			t.Fatalf("%s: encoding: %v", filepath.Base(f), err)
		}
		path := "/webhooks/" + ns + "/" + ep.Name
		if cfg.URLToken != "" {
			path += "/" + cfg.URLToken
		}
		r := post(t, path, h, body)
		if r.status != 200 {
			t.Errorf("%s: answered %d %s", filepath.Base(f), r.status, r.body)
		}
		perProvider[provider]++
	}
	for _, p := range []cardsv1alpha1.Provider{"upay", "tevau", "bananatech", "prepaidify", "alchemypay", "generic"} {
		if perProvider[p] == 0 {
			t.Errorf("no example callback for provider %s", p)
		}
	}
	if len(secrets) == 0 {
		t.Fatal("the example callbacks carry no card number, CVC or code: the scan below would prove nothing")
	}
	t.Logf("%d callbacks carrying %d distinct card secrets", len(files), len(secrets))

	// Dump what a cluster reader could see: the objects' spec, status, labels and annotations, and the Events.
	var dump strings.Builder
	cards := &cardsv1alpha1.CardList{}
	txns := &cardsv1alpha1.CardTransactionList{}
	eps := &cardsv1alpha1.WebhookEndpointList{}
	evs := &corev1.EventList{}
	holders := &cardsv1alpha1.CardHolderList{}
	for _, l := range []client.ObjectList{cards, txns, eps, evs, holders} {
		if err := k8s.List(ctx, l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
	}
	if len(cards.Items) == 0 || len(txns.Items) == 0 || len(holders.Items) == 0 {
		t.Fatalf("the callbacks stored %d cards, %d transactions and %d holders", len(cards.Items), len(txns.Items), len(holders.Items))
	}
	for _, h := range holders.Items {
		writeJSON(&dump, h.Labels, h.Annotations, h.Spec, h.Status)
	}
	for _, c := range cards.Items {
		writeJSON(&dump, c.Labels, c.Annotations, c.Spec, c.Status)
	}
	for _, x := range txns.Items {
		writeJSON(&dump, x.Labels, x.Annotations, x.Spec, x.Status)
	}
	for _, e := range eps.Items {
		writeJSON(&dump, e.Status)
	}
	for _, e := range evs.Items {
		writeJSON(&dump, e.Reason, e.Message)
	}
	dump.WriteString(logs.String())
	dump.WriteString(decisionOut.String())
	for _, leak := range findLeaks(dump.String(), secrets) {
		t.Errorf("found in the API server or logs: %s", leak)
	}
	// Positive control: the same scan over the raw callbacks finds every secret, so a clean result above means
	// something.
	if found := findLeaks(string(raw), secrets); len(found) != len(secrets) {
		t.Errorf("the scan finds only %d of %d secrets in the raw callbacks", len(found), len(secrets))
	}
	for _, key := range []string{`"cvc"`, `"cvv"`, `"otp"`, `"3dsCode"`} {
		if strings.Contains(dump.String(), key) {
			t.Errorf("field %s found in stored objects", key)
		}
	}
	t.Logf("scanned %d cards, %d transactions, %d holders, %d endpoints, %d events and %d bytes of logs",
		len(cards.Items), len(txns.Items), len(holders.Items), len(eps.Items), len(evs.Items), logs.Len())
}

// findLeaks reports each secret found in text: card numbers also when written with spaces or dashes, other
// values as exact JSON strings (or anywhere, when 6 characters or longer).
func findLeaks(text string, secrets map[string]string) []string {
	squeezed := separators.ReplaceAllString(separators.ReplaceAllString(text, "$1$2"), "$1$2")
	var found []string
	for secret, where := range secrets {
		if strings.Contains(where, "card number") {
			if strings.Contains(squeezed, secret) {
				found = append(found, "full card number ending "+secret[len(secret)-4:]+" ("+where+")")
			}
			continue
		}
		if strings.Contains(text, `"`+secret+`"`) || (len(secret) >= 6 && strings.Contains(text, secret)) {
			found = append(found, "the value of a "+where+" field")
		}
	}
	return found
}

var separators = regexp.MustCompile(`([0-9])[ -]+([0-9])`)

func writeJSON(b *strings.Builder, vs ...any) {
	for _, v := range vs {
		data, _ := json.Marshal(v)
		b.Write(data)
		b.WriteByte('\n')
	}
}
