package sink_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/sink"
)

// TestSignStandardWebhooks checks the signature against the Standard Webhooks specification's example.
func TestSignStandardWebhooks(t *testing.T) {
	key, err := endpointconfig.StandardWebhooksKey([]byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
	if err != nil {
		t.Fatal(err)
	}
	ts, body := time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`)
	h := http.Header{}
	sink.SignStandardWebhooks(h, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body, key)
	if got, want := h.Get("webhook-signature"), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("webhook-signature = %s, want the specification's %s", got, want)
	}
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// verify checks a Standard Webhooks request as a consumer would and returns its envelope.
func verify(r *http.Request, body []byte) (map[string]json.RawMessage, error) {
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, testSecret)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	if r.Header.Get("webhook-signature") != "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		return nil, errors.New("bad signature")
	}
	var env map[string]json.RawMessage
	return env, json.Unmarshal(body, &env)
}

// webhookReceiver records verified deliveries by card (read from the data).
func webhookReceiver(t *testing.T, got *received, headers *atomic.Value) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		env, err := verify(r, body)
		if err != nil {
			t.Errorf("delivery refused: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var data struct {
			Metadata struct{ Name string }
		}
		_ = json.Unmarshal(env["data"], &data)
		if headers != nil {
			headers.Store(r.Header.Clone())
		}
		got.add("uid-"+data.Metadata.Name, r.Header.Get("webhook-id"))
		w.WriteHeader(http.StatusNoContent)
	})
}

func newWebhook(t testing.TB, url string, o sink.HTTP) *sink.Webhook {
	t.Helper()
	if o.DialControl == nil {
		o.DialControl = loopback
	}
	s, err := sink.NewWebhook(sink.WebhookConfig{URL: url, Secret: testSecret, HTTP: o})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestWebhookDeliversEveryStateInOrder(t *testing.T) {
	var got received
	var headers atomic.Value
	srv := httptest.NewServer(webhookReceiver(t, &got, &headers))
	defer srv.Close()
	s := newWebhook(t, srv.URL+"/hook", sink.HTTP{Headers: http.Header{"x-api-key": {"k1"}, "content-type": {"text/plain"}},
		BearerToken: "tok"})
	evs := events(3, 5)
	if n := deliver(t, s, evs, nil); n != 0 {
		t.Errorf("%d failed attempts against a healthy destination", n)
	}
	got.check(t, evs)
	h := headers.Load().(http.Header)
	if h.Get("X-Api-Key") != "k1" || h.Get("Authorization") != "Bearer tok" {
		t.Errorf("configured headers not sent: %v", h)
	}
	if h.Get("Content-Type") != "application/json" || len(h.Values("Content-Type")) != 1 {
		t.Errorf("Content-Type = %q: a configured header replaced or joined the sink's", h.Values("Content-Type"))
	}
}

// serveOn serves h on addr (an address a sink already points at) until the test ends.
func serveOn(t *testing.T, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	var l net.Listener
	var err error
	for range 50 { // the port was free a moment ago; another test may be closing a connection on it
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// TestWebhookDownThenUp: the destination is down at first, comes up, goes down for a while in the middle
// and comes back; nothing is skipped, nothing arrives twice, each card's states arrive in order.
func TestWebhookDownThenUp(t *testing.T) {
	testHTTPDownThenUp(t, func(t *testing.T, url string) sink.Sink { return newWebhook(t, url, sink.HTTP{}) },
		func(t *testing.T, got *received) http.Handler { return webhookReceiver(t, got, nil) })
}

func testHTTPDownThenUp(t *testing.T, newSink func(*testing.T, string) sink.Sink,
	handler func(*testing.T, *received) http.Handler) {
	var got received
	addr := freeAddr(t)
	s := newSink(t, "http://"+addr+"/hook")
	evs := events(3, 6)
	var srv *httptest.Server
	failures := deliver(t, s, evs[:9], func() { srv = serveOn(t, addr, handler(t, &got)) })
	if failures == 0 {
		t.Fatal("a Send to a destination that is down succeeded")
	}
	srv.Close()
	back := make(chan struct{})
	failures = deliver(t, s, evs[9:], func() {
		go func() {
			defer close(back)
			time.Sleep(300 * time.Millisecond)
			serveOn(t, addr, handler(t, &got))
		}()
	})
	<-back
	if failures == 0 {
		t.Fatal("a Send to a destination that went down succeeded")
	}
	got.check(t, evs)
}

func TestWebhookAnswers(t *testing.T) {
	for _, tc := range []struct {
		status     int
		retryAfter string
		permanent  bool
		wait       time.Duration
	}{
		{status: 200}, {status: 202},
		{status: 400, permanent: true}, {status: 401, permanent: true}, {status: 404, permanent: true},
		{status: 302, permanent: true},
		{status: 408}, {status: 425}, {status: 500}, {status: 502},
		{status: 429, retryAfter: "7", wait: 7 * time.Second},
		{status: 503, retryAfter: "2", wait: 2 * time.Second},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if tc.retryAfter != "" {
				w.Header().Set("Retry-After", tc.retryAfter)
			}
			w.WriteHeader(tc.status)
		}))
		err := newWebhook(t, srv.URL, sink.HTTP{}).Send(context.Background(), events(1, 1)[0])
		srv.Close()
		var serr *sink.Error
		switch {
		case tc.status < 300 && err != nil:
			t.Errorf("%d: %v", tc.status, err)
		case tc.status < 300:
		case !errors.As(err, &serr) || serr.Status != tc.status:
			t.Errorf("%d: error %v does not carry the status", tc.status, err)
		case sink.Permanent(err) != tc.permanent || sink.RetryAfter(err) != tc.wait:
			t.Errorf("%d: permanent %t retry after %s, want %t %s", tc.status, sink.Permanent(err), sink.RetryAfter(err),
				tc.permanent, tc.wait)
		}
	}
}

// TestDefaultAddressPolicy: without a DialControl, sinks reach public addresses only; the refusal of a
// loopback destination is permanent.
func TestDefaultAddressPolicy(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("reached") }))
	defer srv.Close()
	kafka := newKafkaCluster(t)
	nats := startNATS(t, -1, t.TempDir(), nil)
	build := map[string]func() (sink.Sink, error){
		"webhook": func() (sink.Sink, error) {
			return sink.NewWebhook(sink.WebhookConfig{URL: srv.URL, Secret: testSecret})
		},
		"cloudevents": func() (sink.Sink, error) { return sink.NewCloudEvents(sink.CloudEventsConfig{URL: srv.URL}) },
		"kafka": func() (sink.Sink, error) {
			return sink.NewKafka(sink.KafkaConfig{Brokers: kafka.ListenAddrs(), Topic: kafkaTopic, Timeout: 2 * time.Second})
		},
		"nats": func() (sink.Sink, error) {
			return sink.NewNATS(sink.NATSConfig{URLs: []string{nats.ClientURL()}, SubjectPrefix: "cardplane"})
		},
	}
	for name, b := range build {
		s, err := b()
		if err != nil {
			t.Fatal(err)
		}
		// The NATS client learns why its first connection failed a moment after it failed.
		deadline := time.Now().Add(5 * time.Second)
		for {
			err = s.Send(context.Background(), events(1, 1)[0])
			if sink.Permanent(err) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !errors.Is(err, sink.ErrForbiddenAddress) || !sink.Permanent(err) {
			t.Errorf("%s to loopback: %v, want a permanent ErrForbiddenAddress", name, err)
		}
		_ = s.Close()
	}
}

// TestWebhookProxy: with a proxy, the request goes to the proxy (authenticated), which reaches the destination.
func TestWebhookProxy(t *testing.T) {
	var got received
	dest := httptest.NewServer(webhookReceiver(t, &got, nil))
	defer dest.Close()
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Proxy-Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte("u:p")) {
			w.WriteHeader(http.StatusProxyAuthRequired)
			return
		}
		proxied.Add(1)
		(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.Out.URL = r.URL }}).ServeHTTP(w, r)
	}))
	defer proxy.Close()
	s := newWebhook(t, dest.URL+"/hook", sink.HTTP{ProxyURL: strings.Replace(proxy.URL, "http://", "http://u:p@", 1)})
	evs := events(2, 2)
	deliver(t, s, evs, nil)
	got.check(t, evs)
	if proxied.Load() != int32(len(evs)) {
		t.Errorf("%d requests through the proxy, want %d", proxied.Load(), len(evs))
	}
}

func TestHTTPConfigErrors(t *testing.T) {
	for name, cfg := range map[string]sink.WebhookConfig{
		"no secret":    {URL: "https://example.com"},
		"relative URL": {URL: "/hook", Secret: testSecret},
		"ftp URL":      {URL: "ftp://example.com", Secret: testSecret},
		"token and Authorization": {URL: "https://example.com", Secret: testSecret,
			HTTP: sink.HTTP{BearerToken: "t", Headers: http.Header{"Authorization": {"Basic x"}}}},
		"ce- header":          {URL: "https://example.com", Secret: testSecret, HTTP: sink.HTTP{Headers: http.Header{"ce-type": {"x"}}}},
		"signature header":    {URL: "https://example.com", Secret: testSecret, HTTP: sink.HTTP{Headers: http.Header{"Webhook-Signature": {"x"}}}},
		"Host header":         {URL: "https://example.com", Secret: testSecret, HTTP: sink.HTTP{Headers: http.Header{"host": {"x"}}}},
		"invalid header name": {URL: "https://example.com", Secret: testSecret, HTTP: sink.HTTP{Headers: http.Header{"X Key": {"x"}}}},
		"invalid header value": {URL: "https://example.com", Secret: testSecret,
			HTTP: sink.HTTP{Headers: http.Header{"X-Key": {"a\nb"}}}},
		"proxy scheme": {URL: "https://example.com", Secret: testSecret, HTTP: sink.HTTP{ProxyURL: "ftp://proxy"}},
		"CA bundle":    {URL: "https://example.com", Secret: testSecret, HTTP: sink.HTTP{TLS: sink.TLS{CA: []byte("no")}}},
		"client key": {URL: "https://example.com", Secret: testSecret,
			HTTP: sink.HTTP{TLS: sink.TLS{Cert: []byte("x"), Key: []byte("y")}}},
	} {
		if _, err := sink.NewWebhook(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := sink.NewCloudEvents(sink.CloudEventsConfig{URL: "https://example.com", Mode: "Batch"}); err == nil {
		t.Error("CloudEvents batch mode: accepted")
	}
}

func TestInvalidEventIsPermanent(t *testing.T) {
	s := newWebhook(t, "http://127.0.0.1:1/hook", sink.HTTP{})
	good := events(1, 1)[0]
	for name, ev := range map[string]sink.Event{
		"no ID": {Type: good.Type, Source: good.Source, Data: good.Data},
		"data":  {ID: good.ID, Type: good.Type, Source: good.Source, Data: []byte("{")},
	} {
		if err := s.Send(context.Background(), ev); !errors.Is(err, sink.ErrInvalidEvent) || !sink.Permanent(err) {
			t.Errorf("%s: %v, want a permanent ErrInvalidEvent", name, err)
		}
	}
}
