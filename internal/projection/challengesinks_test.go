package projection

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/scheme"
)

// otpSink is a CardEventSink of namespace ns that lists challenge.otp, selecting team=growth cards.
func otpSink(name, url string, types ...cardsv1alpha1.DestinationEventType) *cardsv1alpha1.CardEventSink {
	if len(types) == 0 {
		types = []cardsv1alpha1.DestinationEventType{cardsv1alpha1.EventChallengeOTP}
	}
	return &cardsv1alpha1.CardEventSink{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: cardsv1alpha1.CardEventSinkSpec{EventTypes: types,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "growth"}},
			Sink: cardsv1alpha1.SinkSpec{Webhook: &cardsv1alpha1.WebhookSink{URL: url,
				SecretRef: cardsv1alpha1.LocalObjectReference{Name: "d"}}}}}
}

func waitSinkCodes(t *testing.T, sinkName, result string, want float64) {
	t.Helper()
	c := challengeDeliveries.WithLabelValues("", "cardeventsink ns/"+sinkName, result)
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(c) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: cardplane_challenge_deliveries_total{result=%q} = %v, want %v", sinkName, result, testutil.ToFloat64(c), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// One-time codes reach the CardEventSinks that list challenge.otp and select the card, over HTTPS only; a sink
// that does not list it, or does not select the card, or is plain http:// outside the local demo, gets nothing.
func TestOTPGoesToSubscribedSinksOverHTTPS(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.URL.Path+" "+string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer tlsSrv.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		bodies = append(bodies, r.URL.Path+" plain")
		mu.Unlock()
	}))
	defer plain.Close()
	roots := x509.NewCertPool()
	roots.AddCert(tlsSrv.Certificate())
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}},
		Data: map[string][]byte{cardsv1alpha1.SecretKeyDestinationSecret: []byte("0123456789abcdef")}}
	objs := []client.Object{secret,
		otpSink("otp", tlsSrv.URL+"/otp"),
		otpSink("states-only", tlsSrv.URL+"/states", cardsv1alpha1.EventCardUpdated),
		otpSink("plain", plain.URL+"/plain")}
	other := otpSink("other-team", tlsSrv.URL+"/other")
	other.Spec.Selector.MatchLabels["team"] = "ledger"
	objs = append(objs, other)
	reader := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(objs...).Build()
	card := &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c1", UID: "u1", Labels: map[string]string{"team": "growth"}}}
	ep := otpEndpoint("no-destinations", "https://unused.example")
	ep.Spec.Destinations = nil

	// cardplane dev (loopback allowed): the https sink, and the plain http:// one on loopback, get the code.
	f := &ChallengeForwarder{Reader: reader, Network: &Network{AllowLoopback: true, RootCAs: roots}, Attempts: 2, Backoff: 10 * time.Millisecond}
	f.Deliver(context.Background(), ep, card, &Challenge{ID: "c1", Purpose: "3ds", Code: "739164"})
	waitSinkCodes(t, "otp", "delivered", 1)
	waitSinkCodes(t, "plain", "delivered", 1)

	// In a cluster: the plain http:// sink is refused before any dial, and the https one on loopback by the
	// address guard.
	f = &ChallengeForwarder{Reader: reader, Network: &Network{RootCAs: roots}, Sinks: SinkPolicy{}, Attempts: 1}
	f.Deliver(context.Background(), ep, card, &Challenge{ID: "c2", Purpose: "3ds", Code: "111222"})
	waitSinkCodes(t, "plain", "insecure", 1)
	waitSinkCodes(t, "otp", "failed", 1)
	time.Sleep(100 * time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, b := range bodies {
		got = append(got, strings.SplitN(b, " ", 2)[0])
	}
	if strings.Join(got, ",") != "/otp,/plain" && strings.Join(got, ",") != "/plain,/otp" {
		t.Errorf("requests went to %v, want /otp and /plain once each", got)
	}
	for _, b := range bodies {
		path, body, _ := strings.Cut(b, " ")
		if path != "/otp" {
			continue
		}
		// The envelope a destination gets, {"type", "timestamp", "data": {"card", "challenge", "endpoint"}}:
		// once, not wrapped in a second envelope.
		var env struct {
			Type string `json:"type"`
			Data struct {
				Card      struct{ Name string } `json:"card"`
				Challenge struct{ Code string } `json:"challenge"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &env); err != nil || env.Type != "challenge.otp" ||
			env.Data.Challenge.Code != "739164" || env.Data.Card.Name != "c1" {
			t.Errorf("the https sink got %s (%v), want the challenge.otp envelope with data.challenge.code and data.card", body, err)
		}
	}
}
