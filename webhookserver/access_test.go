package webhookserver_test

import (
	"net/http"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// TestSourceAddressesAndURLTokens: providers that sign nothing are authenticated by where they call from and
// by a secret in the URL.
func TestSourceAddressesAndURLTokens(t *testing.T) {
	ns := newNamespace(t)
	order := []byte(`{"orderNo":"O-1","cardId":"1240511220800731945","orderType":"2","cardType":"1","status":"SUCCESS","cardAmount":"10.00","cardCurrency":"USD","cryptoCurrency":"USDT","paymentAmount":"10.2","network":"TRC20","orderTime":"2025-11-22 08:10:00"}`)
	json := http.Header{"Content-Type": {"application/json"}}

	elsewhere := createEndpoint(t, &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "elsewhere"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderAlchemyPay,
			Verification: &cardsv1alpha1.Verification{SourceCIDRs: []string{"203.0.113.0/24"}}}}, nil)
	if r := post(t, "/webhooks/"+ns+"/"+elsewhere.Name, json, order); r.status != 403 {
		t.Errorf("a call from 127.0.0.1 to an endpoint allowing 203.0.113.0/24 answered %d %s, want 403", r.status, r.body)
	}
	spoofed := http.Header{"Content-Type": {"application/json"}, "X-Forwarded-For": {"203.0.113.9"}}
	if r := post(t, "/webhooks/"+ns+"/"+elsewhere.Name, spoofed, order); r.status != 403 {
		t.Errorf("X-Forwarded-For from an untrusted peer was believed: %d", r.status)
	}

	proxied := createEndpoint(t, &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "proxied"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderAlchemyPay,
			Verification: &cardsv1alpha1.Verification{SourceCIDRs: []string{"203.0.113.0/24"}, TrustedProxyCIDRs: []string{"127.0.0.0/8"}}}}, nil)
	if r := post(t, "/webhooks/"+ns+"/"+proxied.Name, spoofed, order); r.status != 200 {
		t.Errorf("a call forwarded by a trusted proxy for 203.0.113.9 answered %d %s, want 200", r.status, r.body)
	}

	token := "0123456789abcdef-token"
	tokened := createEndpoint(t, &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tokened"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderAlchemyPay,
			Verification: &cardsv1alpha1.Verification{RequireURLToken: true}}}, map[string]string{cardsv1alpha1.SecretKeyURLToken: token})
	base := "/webhooks/" + ns + "/" + tokened.Name
	for path, want := range map[string]int{base: 401, base + "/wrong-token-0000000": 401, base + "/" + token: 200} {
		if r := post(t, path, json, order); r.status != want {
			t.Errorf("POST %s answered %d %s, want %d", path, r.status, r.body, want)
		}
	}
	if r := post(t, "/webhooks/"+ns+"/"+proxied.Name+"/"+token, spoofed, order); r.status != 404 {
		t.Errorf("a URL token on an endpoint without one answered %d, want 404", r.status)
	}
}
