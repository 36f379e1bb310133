package sink_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cardplane/cardplane/internal/sink"
	"github.com/cardplane/cardplane/internal/testenv"
)

// loopback lets the tests' sinks reach their in-process servers; the default policy refuses loopback.
var loopback = testenv.LoopbackOnly

// pki is a CA made for one test, with a server certificate for 127.0.0.1 and localhost and a client
// certificate, each as PEM.
type pki struct {
	caPEM                 []byte
	pool                  *x509.CertPool
	serverCert            tls.Certificate
	clientCert, clientKey []byte
	clientPair            tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	ca := testenv.NewCA(t)
	p := &pki{caPEM: ca.PEM, pool: ca.Pool}
	var err error
	if p.serverCert, err = tls.X509KeyPair(ca.Issue(t, 2, "server", x509.ExtKeyUsageServerAuth)); err != nil {
		t.Fatal(err)
	}
	p.clientCert, p.clientKey = ca.Issue(t, 3, "cardplane", x509.ExtKeyUsageClientAuth)
	if p.clientPair, err = tls.X509KeyPair(p.clientCert, p.clientKey); err != nil {
		t.Fatal(err)
	}
	return p
}

// serverTLS is a server configuration; with requireClient, only clients with a certificate of the CA get in.
func (p *pki) serverTLS(requireClient bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.serverCert}, MinVersion: tls.VersionTLS12}
	if requireClient {
		c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, p.pool
	}
	return c
}

// clientTLS trusts the CA and, withCert, presents the client certificate.
func (p *pki) clientTLS(withCert bool) sink.TLS {
	t := sink.TLS{CA: p.caPEM}
	if withCert {
		t.Cert, t.Key = p.clientCert, p.clientKey
	}
	return t
}

// events are states 1..states of each card, interleaved across cards as a busy dispatcher would send them.
func events(cards, states int) []sink.Event {
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var evs []sink.Event
	for s := 1; s <= states; s++ {
		for c := range cards {
			name := "card-" + strconv.Itoa(c)
			data, _ := json.Marshal(map[string]any{"metadata": map[string]any{"name": name, "namespace": "team-a"},
				"status": map[string]any{"stateSequence": s}})
			evs = append(evs, sink.Event{ID: "uid-" + name + "-" + strconv.Itoa(s), Type: "card.updated",
				Source: "/namespaces/team-a/cards/" + name, Subject: name, Key: "uid-" + name,
				Time: base.Add(time.Duration(s) * time.Second), Data: data})
		}
	}
	return evs
}

// deliver sends every event in turn as the dispatcher would: a retryable failure is retried (after a short
// pause) until it succeeds, a permanent one fails the test. down, when set, is called once the first failure
// has been seen (to bring the destination back). It returns how many attempts failed.
func deliver(t *testing.T, s sink.Sink, evs []sink.Event, down func()) int {
	t.Helper()
	failures := 0
	deadline := time.Now().Add(60 * time.Second)
	for _, ev := range evs {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err := s.Send(ctx, ev)
			cancel()
			if err == nil {
				break
			}
			if sink.Permanent(err) {
				t.Fatalf("Send %s: permanent error: %v", ev.ID, err)
			}
			failures++
			if down != nil {
				down()
				down = nil
			}
			if time.Now().After(deadline) {
				t.Fatalf("Send %s: still failing: %v", ev.ID, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return failures
}

// received is what a test destination got: event IDs in arrival order, per key.
type received struct {
	mu    sync.Mutex
	ids   []string
	byKey map[string][]string
}

func (r *received) add(key, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKey == nil {
		r.byKey = map[string][]string{}
	}
	r.ids = append(r.ids, id)
	r.byKey[key] = append(r.byKey[key], id)
}

func (r *received) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

// check asserts that every event arrived exactly once and each key's events arrived in the order sent.
func (r *received) check(t *testing.T, evs []sink.Event) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	want := map[string][]string{}
	for _, ev := range evs {
		want[ev.Key] = append(want[ev.Key], ev.ID)
	}
	if len(r.ids) != len(evs) {
		t.Errorf("received %d events, want %d: %v", len(r.ids), len(evs), r.ids)
	}
	for key, ids := range want {
		if fmt.Sprint(r.byKey[key]) != fmt.Sprint(ids) {
			t.Errorf("key %s: received %v, want %v", key, r.byKey[key], ids)
		}
	}
}

// freeAddr is a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}
