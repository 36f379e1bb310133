package projection

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/scheme"
	"github.com/cardplane/cardplane/internal/testenv"
)

// otpEndpoint has one destination, d, that lists challenge.otp at url.
func otpEndpoint(name, url string, allowed ...string) *cardsv1alpha1.WebhookEndpoint {
	ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay,
			Destinations: []cardsv1alpha1.Destination{{Name: "d", URL: url,
				EventTypes: []cardsv1alpha1.DestinationEventType{cardsv1alpha1.EventChallengeOTP},
				SecretRef:  cardsv1alpha1.LocalObjectReference{Name: "d"}}}}}
	if len(allowed) > 0 {
		ep.Spec.DestinationPolicy = &cardsv1alpha1.DestinationPolicy{AllowedCIDRs: allowed}
	}
	return ep
}

// codeCounter is a destination handler that counts the deliveries it receives.
func codeCounter(got *atomic.Int32) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}
}

// waitDeliveries waits until the metric of ep's destination d reaches want for result.
func waitDeliveries(t *testing.T, ep *cardsv1alpha1.WebhookEndpoint, result string, want float64) {
	t.Helper()
	c := challengeDeliveries.WithLabelValues(ep.Namespace+"/"+ep.Name, "d", result)
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(c) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: cardplane_challenge_deliveries_total{result=%q} = %v, want %v", ep.Name, result, testutil.ToFloat64(c), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// One-time codes go only over HTTPS; plain http:// only to loopback, with --allow-loopback-destinations (the
// local demo). A refused code is counted as result "insecure" and never sent.
func TestOTPNeedsHTTPS(t *testing.T) {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}},
		Data: map[string][]byte{cardsv1alpha1.SecretKeyDestinationSecret: []byte("0123456789abcdef")}}
	reader := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(secret).Build()
	var plain, tlsGot atomic.Int32
	loopback := httptest.NewServer(codeCounter(&plain))
	defer loopback.Close()
	tlsSrv := httptest.NewTLSServer(codeCounter(&tlsGot))
	defer tlsSrv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(tlsSrv.Certificate())
	deliver := func(s *Network, ep *cardsv1alpha1.WebhookEndpoint) {
		f := &ChallengeForwarder{Reader: reader, Network: s, Attempts: 2, Backoff: 10 * time.Millisecond}
		f.Deliver(context.Background(), ep, nil, &Challenge{ID: "c1", Purpose: "3ds", Code: "739164"})
	}

	// https:// to a test TLS server: delivered.
	ep := otpEndpoint("tls", tlsSrv.URL)
	deliver(&Network{AllowLoopback: true, RootCAs: roots}, ep)
	waitDeliveries(t, ep, "delivered", 1)
	if tlsGot.Load() != 1 {
		t.Errorf("https destination got %d codes, want 1", tlsGot.Load())
	}

	// http:// to loopback without --allow-loopback-destinations: refused, not even dialled.
	ep = otpEndpoint("plain-loopback", loopback.URL, "127.0.0.0/8")
	deliver(&Network{}, ep)
	waitDeliveries(t, ep, "insecure", 1)

	// http:// to loopback in cardplane dev, but through a proxy (which would carry the code on in plain
	// text): refused.
	ep = otpEndpoint("dev-proxied", loopback.URL)
	ep.Spec.Destinations[0].HTTP = &cardsv1alpha1.HTTPSinkOptions{ProxyURL: loopback.URL}
	deliver(&Network{AllowLoopback: true}, ep)
	waitDeliveries(t, ep, "insecure", 1)

	// http:// to loopback in cardplane dev: delivered.
	ep = otpEndpoint("dev", loopback.URL)
	deliver(&Network{AllowLoopback: true}, ep)
	waitDeliveries(t, ep, "delivered", 1)
	if plain.Load() != 1 {
		t.Errorf("loopback destination got %d codes, want 1 (the dev one)", plain.Load())
	}

	// http:// to any other address, allow-listed or not, even with --allow-loopback-destinations: refused.
	if addr, ok := privateAddressOK(); ok {
		srv, got := serveOn(t, addr)
		for _, s := range []*Network{{}, {AllowLoopback: true}} {
			ep = otpEndpoint("plain-private-"+map[bool]string{true: "dev", false: "prod"}[s.AllowLoopback], srv.URL, "0.0.0.0/0", "::/0")
			deliver(s, ep)
			waitDeliveries(t, ep, "insecure", 1)
		}
		time.Sleep(100 * time.Millisecond)
		if got.Load() != 0 {
			t.Errorf("a plain http:// destination on %s got %d one-time codes", addr, got.Load())
		}
	}
	for _, name := range []string{"tls", "plain-loopback", "dev"} {
		if n := testutil.ToFloat64(challengeDeliveries.WithLabelValues("ns/"+name, "d", "failed")); n != 0 {
			t.Errorf("%s: %v failed deliveries", name, n)
		}
	}
}

// A one-time code to a destination with http options goes with them: verified against the destination's own
// CA, with its client certificate and its header. Before, the challenge path had no TLS configuration at
// all, so a destination that requires a client certificate never got a code.
func TestOTPToAnAuthenticatedDestination(t *testing.T) {
	ca := testenv.NewCA(t)
	serverCert, serverKey := ca.Issue(t, 2, "ledger", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := ca.Issue(t, 3, "cardplane-otp", x509.ExtKeyUsageClientAuth)
	pair, err := tls.X509KeyPair(serverCert, serverKey)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string // client CN and API key of each code received
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.TLS.PeerCertificates[0].Subject.CommonName+" "+r.Header.Get("X-Api-Key"))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: ca.Pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()
	labels := map[string]string{cardsv1alpha1.LabelCredentials: "true"}
	reader := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", Labels: labels},
			Data: map[string][]byte{cardsv1alpha1.SecretKeyDestinationSecret: []byte("0123456789abcdef"), "apiKey": []byte("k-1"), "ca.crt": ca.PEM}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "client", Labels: labels}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: clientCert, corev1.TLSPrivateKeyKey: clientKey}}).Build()
	ep := otpEndpoint("mtls", srv.URL)
	ep.Spec.Destinations[0].HTTP = &cardsv1alpha1.HTTPSinkOptions{
		Headers: []cardsv1alpha1.SecretHeader{{Name: "X-Api-Key", ValueFrom: cardsv1alpha1.SecretKeyReference{Name: "d", Key: "apiKey"}}},
		TLS: &cardsv1alpha1.SinkTLS{CASecretRef: &cardsv1alpha1.SecretKeyReference{Name: "d", Key: "ca.crt"},
			ClientCertificateSecretRef: &cardsv1alpha1.LocalObjectReference{Name: "client"}}}
	// The system roots (the Network's default) do not hold the test CA: only the destination's own CA works.
	f := &ChallengeForwarder{Reader: reader, Network: &Network{AllowLoopback: true}, Attempts: 1}
	f.Deliver(context.Background(), ep, nil, &Challenge{ID: "c1", Purpose: "3ds", Code: "739164"})
	waitDeliveries(t, ep, "delivered", 1)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "cardplane-otp k-1" {
		t.Errorf("the destination saw %q, want one code from client cardplane-otp with X-Api-Key k-1", seen)
	}
}
