package sinkconfig

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/sink"
	"github.com/cardplane/cardplane/internal/testenv"
)

// received is what a test server saw of one request.
type received struct {
	header   http.Header
	body     []byte
	clientCN string
}

// recorder is a handler that passes each request on and answers 204.
func recorder(got chan<- received) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := received{header: r.Header.Clone(), body: body}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			rec.clientCN = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		got <- rec
		w.WriteHeader(http.StatusNoContent)
	}
}

var testEvent = sink.Event{ID: "uid-1-7", Type: "card.updated", Source: "/namespaces/team-a/cards/c1", Subject: "c1",
	Key: "c1", Time: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC), Data: []byte(`{"name":"c1"}`)}

// A webhook sink built from Secrets alone reaches a server that requires a client certificate of a private CA:
// the CA verifies the server, the client certificate is presented, the header and bearer values arrive
// without the newline echo left in the Secrets, and the body is signed with the decoded whsec_ key.
func TestBuildWebhookSendsOverMTLS(t *testing.T) {
	ca := testenv.NewCA(t)
	serverPair, err := tls.X509KeyPair(ca.Issue(t, 2, "server", x509.ExtKeyUsageServerAuth))
	if err != nil {
		t.Fatal(err)
	}
	clientCert, clientKey := ca.Issue(t, 3, "cardplane", x509.ExtKeyUsageClientAuth)
	got := make(chan received, 1)
	srv := httptest.NewUnstartedServer(recorder(got))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverPair}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: ca.Pool, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	clientSecret := secret("client", map[string]string{corev1.TLSCertKey: string(clientCert), corev1.TLSPrivateKeyKey: string(clientKey)})
	clientSecret.Type = corev1.SecretTypeTLS
	r := newReader(
		secret("signing", map[string]string{cardsv1alpha1.SecretKeyDestinationSecret: "whsec_" + base64.StdEncoding.EncodeToString(key) + "\n"}),
		secret("api", map[string]string{"apiKey": "k3y value\n", "tenant": "acme\r\n"}),
		secret("bearer", map[string]string{"token": "b3arer\n"}),
		secret("ca", map[string]string{"ca.crt": string(ca.PEM)}),
		clientSecret,
	)
	spec := &cardsv1alpha1.SinkSpec{Webhook: &cardsv1alpha1.WebhookSink{URL: srv.URL + "/hooks",
		SecretRef: cardsv1alpha1.LocalObjectReference{Name: "signing"},
		HTTP: &cardsv1alpha1.HTTPSinkOptions{
			Headers: []cardsv1alpha1.SecretHeader{
				{Name: "X-Api-Key", ValueFrom: cardsv1alpha1.SecretKeyReference{Name: "api", Key: "apiKey"}},
				{Name: "X-Tenant", ValueFrom: cardsv1alpha1.SecretKeyReference{Name: "api", Key: "tenant"}},
			},
			BearerTokenSecretRef: &cardsv1alpha1.SecretKeyReference{Name: "bearer", Key: "token"},
			TLS: &cardsv1alpha1.SinkTLS{CASecretRef: &cardsv1alpha1.SecretKeyReference{Name: "ca", Key: "ca.crt"},
				ClientCertificateSecretRef: &cardsv1alpha1.LocalObjectReference{Name: "client"}},
		}}}
	s, err := Build(context.Background(), r, ns, spec, Options{Dial: loopback, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Send(context.Background(), testEvent); err != nil {
		t.Fatal(err)
	}
	rec := <-got
	for h, want := range map[string]string{"X-Api-Key": "k3y value", "X-Tenant": "acme", "Authorization": "Bearer b3arer",
		"Webhook-Id": testEvent.ID} {
		if v := rec.header.Get(h); v != want {
			t.Errorf("%s = %q, want %q", h, v, want)
		}
	}
	if rec.clientCN != "cardplane" {
		t.Errorf("client certificate CN %q, want cardplane", rec.clientCN)
	}
	ts, err := strconv.ParseInt(rec.header.Get("Webhook-Timestamp"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{}
	sink.SignStandardWebhooks(want, testEvent.ID, time.Unix(ts, 0), rec.body, key)
	if rec.header.Get("Webhook-Signature") != want.Get("webhook-signature") {
		t.Errorf("signature %q, want %q (signed with the decoded whsec_ key)", rec.header.Get("Webhook-Signature"), want.Get("webhook-signature"))
	}
}

// Without a caller's policy the sink refuses loopback (sink.PublicOnly), and without caSecretRef it verifies
// with the caller's RootCAs: the private CA is trusted only when passed in.
func TestBuildAppliesOptions(t *testing.T) {
	ca := testenv.NewCA(t)
	serverPair, err := tls.X509KeyPair(ca.Issue(t, 2, "server", x509.ExtKeyUsageServerAuth))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan received, 1)
	srv := httptest.NewUnstartedServer(recorder(got))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverPair}, MinVersion: tls.VersionTLS12}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	r := newReader()
	spec := &cardsv1alpha1.SinkSpec{CloudEvents: &cardsv1alpha1.CloudEventsSink{URL: srv.URL}}

	send := func(o Options) error {
		s, err := Build(context.Background(), r, ns, spec, o)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		return s.Send(context.Background(), testEvent)
	}
	if err := send(Options{}); !errors.Is(err, sink.ErrForbiddenAddress) || !sink.Permanent(err) {
		t.Errorf("default policy: %v, want a permanent ErrForbiddenAddress", err)
	}
	if err := send(Options{Dial: loopback}); err == nil {
		t.Error("system roots accepted a private CA's server certificate")
	}
	if err := send(Options{Dial: loopback, RootCAs: ca.Pool}); err != nil {
		t.Errorf("with the caller's roots: %v", err)
	}
}

// CloudEvents mode: empty is binary (attributes in ce-* headers), Structured one cloudevents+json body.
func TestBuildCloudEventsModes(t *testing.T) {
	got := make(chan received, 1)
	srv := httptest.NewServer(recorder(got))
	defer srv.Close()
	for _, tc := range []struct {
		mode        cardsv1alpha1.CloudEventsMode
		contentType string
		ceID        string
	}{
		{"", "application/json", testEvent.ID},
		{"Structured", "application/cloudevents+json", ""},
	} {
		spec := &cardsv1alpha1.SinkSpec{CloudEvents: &cardsv1alpha1.CloudEventsSink{URL: srv.URL, Mode: tc.mode}}
		s, err := Build(context.Background(), newReader(), ns, spec, Options{Dial: loopback})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(context.Background(), testEvent); err != nil {
			t.Fatal(err)
		}
		_ = s.Close()
		rec := <-got
		if ct := rec.header.Get("Content-Type"); ct != tc.contentType {
			t.Errorf("mode %q: Content-Type %q, want %q", tc.mode, ct, tc.contentType)
		}
		if id := rec.header.Get("Ce-Id"); id != tc.ceID {
			t.Errorf("mode %q: ce-id %q, want %q", tc.mode, id, tc.ceID)
		}
	}
}
