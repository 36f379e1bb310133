package controllers_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/testenv"
)

// TestAuthenticatedDestinations: a WebhookEndpoint's destinations reach systems that authenticate cardplane
// (a private CA, a client certificate, an API-key header, a bearer token) or sit behind a forward proxy, with
// the options and Secrets CardEventSinks use; rotated Secrets are picked up without a restart, and a
// destination whose Secrets are missing is reported on DestinationsReady while callbacks are still accepted.
func TestAuthenticatedDestinations(t *testing.T) {
	t.Run("MTLSHeaderAndBearerToken", adMTLSHeaderAndBearerToken)
	t.Run("Rotation", adRotation)
	t.Run("Proxy", adProxy)
	t.Run("DestinationsReady", adDestinationsReady)
}

// adRequest is one request an adServer saw, whatever its path.
type adRequest struct {
	// URL is the request target as received: a path, or an absolute URI when the server is a proxy.
	URL, Path, Host string
	APIKey, Auth    string
	// ClientCN is the common name of the client certificate the TLS handshake verified ("" without one).
	ClientCN string
	ID, Name string
	Seq      int64
	// Signed says the Standard Webhooks signature verified (with destinationSecret); unsigned ones get 401.
	Signed bool
}

// adServer is an external system on loopback (a destination, or a forward proxy that answers itself). Like
// the projection tests' destination it checks signatures with its own Standard Webhooks implementation, not
// cardplane's, and it records what authenticated each request: headers and the client certificate.
type adServer struct {
	*httptest.Server
	mu  sync.Mutex
	got []adRequest
	// serverLog is what the server logged: the handshakes it refused.
	serverLog testenv.LogBuffer
}

// adNewServer starts an adServer, over TLS with cfg when cfg is set. The handshakes it refuses are kept in
// serverLog, not printed: they are expected here.
func adNewServer(t *testing.T, cfg *tls.Config) *adServer {
	t.Helper()
	s := &adServer{}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(destinationSecret, "whsec_"))
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		sec, _ := strconv.ParseInt(ts, 10, 64)
		var env struct {
			Data struct {
				Metadata struct{ Name string } `json:"metadata"`
				Status   struct {
					StateSequence int64 `json:"stateSequence"`
				} `json:"status"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &env)
		req := adRequest{URL: r.URL.String(), Path: r.URL.Path, Host: r.Host, APIKey: r.Header.Get("X-Api-Key"),
			Auth: r.Header.Get("Authorization"), ID: id, Name: env.Data.Metadata.Name, Seq: env.Data.Status.StateSequence,
			Signed: strings.Contains(" "+r.Header.Get("webhook-signature")+" ", " "+want+" ") &&
				time.Since(time.Unix(sec, 0)).Abs() <= 5*time.Minute}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			req.ClientCN = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		s.mu.Lock()
		s.got = append(s.got, req)
		s.mu.Unlock()
		if !req.Signed {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	if cfg != nil {
		s.TLS = cfg
		s.Config.ErrorLog = log.New(&s.serverLog, "", 0)
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

// at lists the requests received on path ("" for every one).
func (s *adServer) at(path string) []adRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []adRequest
	for _, r := range s.got {
		if path == "" || r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// last is the last request received on path (the zero request before any).
func (s *adServer) last(path string) adRequest {
	got := s.at(path)
	if len(got) == 0 {
		return adRequest{}
	}
	return got[len(got)-1]
}

// adTLSServer is a destination whose certificate a fresh private CA issued, so only a client given that CA
// (tls.caSecretRef) can verify it; with mTLS it also requires a client certificate of the same CA.
func adTLSServer(t *testing.T, ca *testenv.CA, mTLS bool) *adServer {
	t.Helper()
	pair, err := tls.X509KeyPair(ca.Issue(t, 2, "ledger.test", x509.ExtKeyUsageServerAuth))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if mTLS {
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, ca.Pool
	}
	return adNewServer(t, cfg)
}

// adSecret creates a Secret labelled for cardplane, of type typ (Opaque when empty).
func adSecret(t *testing.T, ns, name string, typ corev1.SecretType, data map[string][]byte) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
		Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}}, Type: typ, Data: data}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// adUpdateSecret replaces keys of a Secret's data, as an operator rotating a credential would.
func adUpdateSecret(t *testing.T, ns, name string, data map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	s := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	for k, v := range data {
		s.Data[k] = v
	}
	if err := k8s.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
}

// adMTLSSecrets creates the Secrets of an mTLS destination: the CA bundle (ledger-ca, key ca.crt), the client
// certificate with common name cn (ledger-client, kubernetes.io/tls), the API key (ledger-api, key apiKey) and
// the bearer token (ledger-token, key token).
func adMTLSSecrets(t *testing.T, ns string, ca *testenv.CA, cn, apiKey, token string) {
	t.Helper()
	cert, key := ca.Issue(t, 3, cn, x509.ExtKeyUsageClientAuth)
	adSecret(t, ns, "ledger-ca", "", map[string][]byte{"ca.crt": ca.PEM})
	adSecret(t, ns, "ledger-client", corev1.SecretTypeTLS, map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key})
	adSecret(t, ns, "ledger-api", "", map[string][]byte{"apiKey": []byte(apiKey)})
	adSecret(t, ns, "ledger-token", "", map[string][]byte{"token": []byte(token)})
}

// adCARef is the CA bundle adMTLSSecrets creates.
func adCARef() *cardsv1alpha1.SecretKeyReference {
	return &cardsv1alpha1.SecretKeyReference{Name: "ledger-ca", Key: "ca.crt"}
}

// adMTLSOptions are the http options naming every Secret adMTLSSecrets creates.
func adMTLSOptions() *cardsv1alpha1.HTTPSinkOptions {
	return &cardsv1alpha1.HTTPSinkOptions{
		Headers: []cardsv1alpha1.SecretHeader{{Name: "X-Api-Key",
			ValueFrom: cardsv1alpha1.SecretKeyReference{Name: "ledger-api", Key: "apiKey"}}},
		BearerTokenSecretRef: &cardsv1alpha1.SecretKeyReference{Name: "ledger-token", Key: "token"},
		TLS: &cardsv1alpha1.SinkTLS{CASecretRef: adCARef(),
			ClientCertificateSecretRef: &cardsv1alpha1.LocalObjectReference{Name: "ledger-client"}},
	}
}

// adRetry retries quickly, so a failing destination shows its error in status within a second.
func adRetry() *cardsv1alpha1.RetryPolicy {
	return &cardsv1alpha1.RetryPolicy{MinBackoff: &metav1.Duration{Duration: 100 * time.Millisecond},
		MaxBackoff: &metav1.Duration{Duration: 500 * time.Millisecond}}
}

// adDestination is a destination to url signed with the Secret "ledger" that adEndpoint creates.
func adDestination(name, url string, h *cardsv1alpha1.HTTPSinkOptions) cardsv1alpha1.Destination {
	return cardsv1alpha1.Destination{Name: name, URL: url, SecretRef: cardsv1alpha1.LocalObjectReference{Name: "ledger"},
		HTTP: h, Retry: adRetry()}
}

// adEndpoint creates, in ns, the signing Secret "ledger" and an endpoint called name (observe writes cards of
// "orders") with dests.
func adEndpoint(t *testing.T, ns, name string, dests ...cardsv1alpha1.Destination) {
	t.Helper()
	ctx := context.Background()
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ledger"}, &corev1.Secret{}); err != nil {
		polSecret(t, ns, "ledger", true, map[string]string{cardsv1alpha1.SecretKeyDestinationSecret: destinationSecret})
	}
	ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderAlchemyPay,
			Verification: &cardsv1alpha1.Verification{SourceCIDRs: []string{"127.0.0.0/8"}},
			Destinations: dests}}
	if err := k8s.Create(ctx, ep); err != nil {
		t.Fatal(err)
	}
}

// adEndpointGet reads the endpoint name of ns.
func adEndpointGet(t *testing.T, ns, name string) *cardsv1alpha1.WebhookEndpoint {
	t.Helper()
	ep := &cardsv1alpha1.WebhookEndpoint{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ep); err != nil {
		t.Fatal(err)
	}
	return ep
}

// adCondition is condition typ of endpoint name, nil unless the reconciler has validated its current
// generation (a condition of an older spec proves nothing).
func adCondition(t *testing.T, ns, name, typ string) *metav1.Condition {
	t.Helper()
	ep := adEndpointGet(t, ns, name)
	if ep.Status.ObservedGeneration != ep.Generation {
		return nil
	}
	return apimeta.FindStatusCondition(ep.Status.Conditions, typ)
}

// adIs reports whether c has status and reason.
func adIs(c *metav1.Condition, status metav1.ConditionStatus, reason string) bool {
	return c != nil && c.Status == status && c.Reason == reason
}

// adDump logs an endpoint's status and what the servers received (on a timeout).
func adDump(t *testing.T, ns, name string, servers ...*adServer) func() {
	return func() {
		ep := &cardsv1alpha1.WebhookEndpoint{}
		_ = k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ep)
		b, _ := json.MarshalIndent(ep.Status, "", "  ")
		t.Logf("endpoint %s/%s generation %d status %s", ns, name, ep.Generation, b)
		for i, s := range servers {
			t.Logf("server %d received %+v", i, s.at(""))
		}
	}
}

// adCardUID is the UID of card name, which the webhook-id of its states starts with.
func adCardUID(t *testing.T, ns, name string) string {
	t.Helper()
	card := &cardsv1alpha1.Card{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, card); err != nil {
		t.Fatal(err)
	}
	return string(card.UID)
}

// adMTLSHeaderAndBearerToken: a destination behind mTLS with a private CA receives each state once, signed, with
// the API-key header and the bearer token, presenting the client certificate from its Secret. The same server
// reached without the client certificate, or without any TLS options (what destinations could do before they
// had http options), gets nothing, and status says why.
func adMTLSHeaderAndBearerToken(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ca := testenv.NewCA(t)
	srv := adTLSServer(t, ca, true)
	adMTLSSecrets(t, ns, ca, "cardplane-orders", "k3y-1\n", "t0ken-1") // the newline of `echo` is dropped
	noCert := &cardsv1alpha1.HTTPSinkOptions{TLS: &cardsv1alpha1.SinkTLS{CASecretRef: adCARef()}}
	adEndpoint(t, ns, "orders",
		adDestination("ledger", srv.URL+"/hooks", adMTLSOptions()),
		adDestination("no-cert", srv.URL+"/no-cert", noCert),
		adDestination("no-tls", srv.URL+"/no-tls", nil))
	startManager(t, ns)
	dump := adDump(t, ns, "orders", srv)

	// Every transport can be built: what fails below fails at the destination, which DestinationsReady
	// cannot know.
	waitFor(t, "DestinationsReady True", func() bool {
		return adIs(adCondition(t, ns, "orders", cardsv1alpha1.ConditionDestinationsReady), metav1.ConditionTrue, "Configured")
	}, dump)
	observe(t, ns, "c1", cardsv1alpha1.CardActive)
	waitFor(t, "the state delivered over mTLS", func() bool { return len(srv.at("/hooks")) >= 1 }, dump)
	waitFor(t, "no-cert and no-tls failing in status", func() bool {
		nc, nt := destinationStatus(t, ns, "no-cert"), destinationStatus(t, ns, "no-tls")
		return nc != nil && nc.LastError != "" && nc.State != cardsv1alpha1.DestinationHealthy && nc.Pending == 1 &&
			nt != nil && nt.LastError != "" && nt.State != cardsv1alpha1.DestinationHealthy && nt.Pending == 1
	}, dump)
	waitFor(t, "ledger Healthy with nothing pending", func() bool {
		s := destinationStatus(t, ns, "ledger")
		return s != nil && s.State == cardsv1alpha1.DestinationHealthy && s.Pending == 0 && s.LastError == ""
	}, dump)

	got := srv.at("")
	want := adRequest{URL: "/hooks", Path: "/hooks", Host: strings.TrimPrefix(srv.URL, "https://"), APIKey: "k3y-1",
		Auth: "Bearer t0ken-1", ClientCN: "cardplane-orders", ID: adCardUID(t, ns, "c1") + "-1", Name: "c1", Seq: 1, Signed: true}
	if len(got) != 1 || got[0] != want {
		t.Errorf("the server received %+v, want exactly %+v", got, want)
	}
	// What failed is the handshake (the handler saw neither): the server refused a client without a
	// certificate, and without the CA bundle cardplane refused the server's certificate.
	if l := srv.serverLog.String(); !strings.Contains(l, "client didn't provide a certificate") {
		t.Errorf("the server did not refuse a client without a certificate; it logged %q", l)
	}
	nc, nt := destinationStatus(t, ns, "no-cert"), destinationStatus(t, ns, "no-tls")
	if !strings.Contains(nt.LastError, "unknown authority") {
		t.Errorf("no-tls lastError %q, want the private CA's certificate refused by the default roots", nt.LastError)
	}
	t.Logf("no-cert lastError %q", nc.LastError)
	if r := adCondition(t, ns, "orders", cardsv1alpha1.ConditionReady); !adIs(r, metav1.ConditionTrue, cardsv1alpha1.ReasonAccepting) {
		t.Errorf("Ready = %+v, want True Accepting", r)
	}
}

// adRotation: a rotated API key and a re-issued client certificate are used by the next deliveries, without
// restarting the manager.
func adRotation(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ca := testenv.NewCA(t)
	srv := adTLSServer(t, ca, true)
	adMTLSSecrets(t, ns, ca, "cardplane-orders", "k3y-1", "t0ken-1")
	adEndpoint(t, ns, "orders", adDestination("ledger", srv.URL+"/hooks", adMTLSOptions()))
	startManager(t, ns)
	dump := adDump(t, ns, "orders", srv)

	observe(t, ns, "c1", cardsv1alpha1.CardActive)
	waitFor(t, "the first delivery", func() bool { return len(srv.at("/hooks")) == 1 }, dump)
	if r := srv.at("/hooks")[0]; r.APIKey != "k3y-1" || r.ClientCN != "cardplane-orders" || !r.Signed {
		t.Fatalf("first delivery %+v, want k3y-1 from cardplane-orders, signed", r)
	}

	cert, key := ca.Issue(t, 4, "cardplane-orders-rotated", x509.ExtKeyUsageClientAuth)
	adUpdateSecret(t, ns, "ledger-api", map[string][]byte{"apiKey": []byte("k3y-2")})
	adUpdateSecret(t, ns, "ledger-client", map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key})
	// States keep coming; once one carries both new credentials, so does every later one. (The two Secrets are
	// two writes: a delivery between them may carry one new value and one old.)
	rotated := func(r adRequest) bool { return r.APIKey == "k3y-2" && r.ClientCN == "cardplane-orders-rotated" }
	next := map[cardsv1alpha1.CardPhase]cardsv1alpha1.CardPhase{
		cardsv1alpha1.CardFrozen: cardsv1alpha1.CardActive, cardsv1alpha1.CardActive: cardsv1alpha1.CardFrozen}
	deadline := time.Now().Add(30 * time.Second)
	for phase := cardsv1alpha1.CardFrozen; !rotated(srv.last("/hooks")); phase = next[phase] {
		if time.Now().After(deadline) {
			dump()
			t.Fatal("no delivery carried the rotated API key and client certificate")
		}
		n := len(srv.at("/hooks"))
		observe(t, ns, "c1", phase)
		waitFor(t, "the next state delivered", func() bool { return len(srv.at("/hooks")) == n+1 }, dump)
	}
	t.Logf("the rotated credentials were in use by delivery %d", len(srv.at("/hooks")))
	observe(t, ns, "c2", cardsv1alpha1.CardActive)
	waitFor(t, "a later delivery", func() bool { return srv.last("/hooks").Name == "c2" }, dump)
	if r := srv.last("/hooks"); !rotated(r) {
		t.Errorf("a delivery after the rotation carried %+v", r)
	}
	for i, r := range srv.at("") {
		if !r.Signed || r.Path != "/hooks" || r.Auth != "Bearer t0ken-1" || (r.APIKey != "k3y-1" && r.APIKey != "k3y-2") ||
			(r.ClientCN != "cardplane-orders" && r.ClientCN != "cardplane-orders-rotated") {
			t.Errorf("delivery %d: %+v", i, r)
		}
	}
	if c := adCondition(t, ns, "orders", cardsv1alpha1.ConditionDestinationsReady); !adIs(c, metav1.ConditionTrue, "Configured") {
		t.Errorf("DestinationsReady after the rotation = %+v", c)
	}

	// A rotation that breaks the Secret (its key removed) is reported, and the last good transport keeps
	// delivering, as a CardEventSink keeps its last good configuration. Before, every state failed until the
	// Secret was fixed.
	broken := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "ledger-api"}, broken); err != nil {
		t.Fatal(err)
	}
	delete(broken.Data, "apiKey")
	broken.Data["other"] = []byte("x")
	if err := k8s.Update(context.Background(), broken); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "DestinationsReady False SecretKeyMissing", func() bool {
		return adIs(adCondition(t, ns, "orders", cardsv1alpha1.ConditionDestinationsReady), metav1.ConditionFalse, cardsv1alpha1.ReasonSecretKeyMissing)
	}, dump)
	time.Sleep(time.Second) // past the dispatcher's recheck interval (300 ms here): it has seen the broken Secret
	observe(t, ns, "c3", cardsv1alpha1.CardActive)
	waitFor(t, "a delivery with the last good credentials", func() bool { return srv.last("/hooks").Name == "c3" }, dump)
	if r := srv.last("/hooks"); !rotated(r) || !r.Signed {
		t.Errorf("the delivery after a broken rotation carried %+v, want the last good credentials", r)
	}
}

// adProxy: a destination whose host only the proxy can resolve is delivered through proxyURL: the proxy (which
// answers itself here) receives the absolute URI, signed.
func adProxy(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	proxy := adNewServer(t, nil)
	adEndpoint(t, ns, "orders", adDestination("ledger", "http://ledger.invalid/hooks",
		&cardsv1alpha1.HTTPSinkOptions{ProxyURL: proxy.URL}))
	startManager(t, ns)
	dump := adDump(t, ns, "orders", proxy)

	observe(t, ns, "c1", cardsv1alpha1.CardActive)
	waitFor(t, "the state delivered through the proxy", func() bool { return len(proxy.at("")) >= 1 }, dump)
	waitFor(t, "ledger Healthy with nothing pending", func() bool {
		s := destinationStatus(t, ns, "ledger")
		return s != nil && s.State == cardsv1alpha1.DestinationHealthy && s.Pending == 0
	}, dump)
	want := adRequest{URL: "http://ledger.invalid/hooks", Path: "/hooks", Host: "ledger.invalid",
		ID: adCardUID(t, ns, "c1") + "-1", Name: "c1", Seq: 1, Signed: true}
	if got := proxy.at(""); len(got) != 1 || got[0] != want {
		t.Errorf("the proxy received %+v, want exactly %+v", got, want)
	}
}

// adDestinationsReady: a destination naming a CA Secret that does not exist yet makes DestinationsReady False
// (SecretNotFound, naming the destination) while Ready stays True; its states wait, and are delivered once
// the Secret is created. An endpoint without destinations has no DestinationsReady, and loses it when its
// destinations are removed.
func adDestinationsReady(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ca := testenv.NewCA(t)
	srv := adTLSServer(t, ca, false)
	ledger := adDestination("ledger", srv.URL+"/hooks", &cardsv1alpha1.HTTPSinkOptions{
		TLS: &cardsv1alpha1.SinkTLS{CASecretRef: adCARef()}})
	// A budget of 2 attempts: an attempt that never left, for want of the transport, spends none, so the
	// state waits. (Before, each counted, and the state was given up, ProjectionFailed, within a second.)
	ledger.Retry = &cardsv1alpha1.RetryPolicy{MaxAttempts: 2, MinBackoff: &metav1.Duration{Duration: 100 * time.Millisecond}}
	adEndpoint(t, ns, "orders", ledger)
	adEndpoint(t, ns, "bare")
	startManager(t, ns)
	dump := adDump(t, ns, "orders", srv)

	waitFor(t, "DestinationsReady False SecretNotFound", func() bool {
		return adIs(adCondition(t, ns, "orders", cardsv1alpha1.ConditionDestinationsReady), metav1.ConditionFalse, cardsv1alpha1.ReasonSecretNotFound)
	}, dump)
	c := adCondition(t, ns, "orders", cardsv1alpha1.ConditionDestinationsReady)
	for _, part := range []string{"destination ledger:", ns + "/ledger-ca", "callbacks are still accepted"} {
		if !strings.Contains(c.Message, part) {
			t.Errorf("DestinationsReady message %q does not say %q", c.Message, part)
		}
	}
	if r := adCondition(t, ns, "orders", cardsv1alpha1.ConditionReady); !adIs(r, metav1.ConditionTrue, cardsv1alpha1.ReasonAccepting) {
		t.Errorf("Ready = %+v, want True Accepting: a destination's Secret does not stop ingestion", r)
	}
	waitFor(t, "a SecretNotFound Warning Event", func() bool { return polEvent(t, ns, cardsv1alpha1.ReasonSecretNotFound, "orders") }, dump)
	waitFor(t, "bare: Ready True", func() bool {
		return adIs(adCondition(t, ns, "bare", cardsv1alpha1.ConditionReady), metav1.ConditionTrue, cardsv1alpha1.ReasonAccepting)
	}, adDump(t, ns, "bare"))
	if c := adCondition(t, ns, "bare", cardsv1alpha1.ConditionDestinationsReady); c != nil {
		t.Errorf("an endpoint without destinations has DestinationsReady %+v", c)
	}

	observe(t, ns, "c1", cardsv1alpha1.CardActive)
	waitFor(t, "the state pending, with the missing Secret as its error", func() bool {
		s := destinationStatus(t, ns, "ledger")
		return s != nil && s.Pending == 1 && strings.Contains(s.LastError, "ledger-ca")
	}, dump)
	if got := srv.at(""); len(got) != 0 {
		t.Fatalf("delivered without its CA Secret: %+v", got)
	}

	adSecret(t, ns, "ledger-ca", "", map[string][]byte{"ca.crt": ca.PEM})
	waitFor(t, "the waiting state delivered", func() bool { return len(srv.at("")) >= 1 }, dump)
	configured := func() bool {
		return adIs(adCondition(t, ns, "orders", cardsv1alpha1.ConditionDestinationsReady), metav1.ConditionTrue, "Configured")
	}
	waitFor(t, "DestinationsReady True once the Secret exists", configured, dump)
	waitFor(t, "ledger Healthy with nothing pending", func() bool {
		s := destinationStatus(t, ns, "ledger")
		return s != nil && s.State == cardsv1alpha1.DestinationHealthy && s.Pending == 0
	}, dump)
	want := adRequest{URL: "/hooks", Path: "/hooks", Host: strings.TrimPrefix(srv.URL, "https://"),
		ID: adCardUID(t, ns, "c1") + "-1", Name: "c1", Seq: 1, Signed: true}
	if got := srv.at(""); len(got) != 1 || got[0] != want {
		t.Errorf("the server received %+v, want exactly %+v", got, want)
	}
	card := &cardsv1alpha1.Card{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "c1"}, card); err != nil {
		t.Fatal(err)
	}
	if apimeta.IsStatusConditionTrue(card.Status.Conditions, cardsv1alpha1.ConditionProjectionFailed) {
		t.Errorf("the waiting state was given up: %+v", card.Status.Conditions)
	}

	// Its destinations removed, the endpoint has no DestinationsReady any more.
	ep := adEndpointGet(t, ns, "orders")
	patch := client.MergeFrom(ep.DeepCopy())
	ep.Spec.Destinations = nil
	if err := k8s.Patch(context.Background(), ep, patch); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "DestinationsReady removed with the destinations", func() bool {
		ep := adEndpointGet(t, ns, "orders")
		return ep.Status.ObservedGeneration == ep.Generation &&
			apimeta.FindStatusCondition(ep.Status.Conditions, cardsv1alpha1.ConditionDestinationsReady) == nil
	}, dump)
}
