package sink_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/cardplane/cardplane/internal/sink"
)

// ceReceiver is an sdk-go CloudEvents receiver: what Knative and Argo Events decode with.
type ceReceiver struct {
	got received
	mu  sync.Mutex
	evs []event.Event
	// contentTypes are the requests' Content-Type headers, which tell binary from structured mode.
	contentTypes []string
	// answer, when set, is the receiver's result.
	answer protocol.Result
}

func (r *ceReceiver) receive(e event.Event) protocol.Result {
	r.mu.Lock()
	r.evs = append(r.evs, e)
	answer := r.answer
	r.mu.Unlock()
	if answer != nil {
		return answer
	}
	var data struct {
		Metadata struct{ Name string }
	}
	_ = e.DataAs(&data)
	r.got.add("uid-"+data.Metadata.Name, e.ID())
	return protocol.ResultACK
}

func (r *ceReceiver) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.contentTypes = append(r.contentTypes, req.Header.Get("Content-Type"))
		r.mu.Unlock()
		next.ServeHTTP(w, req)
	})
}

// startCEReceiver runs an sdk-go HTTP client's receiver on a loopback listener.
func startCEReceiver(t testing.TB, l net.Listener) *ceReceiver {
	t.Helper()
	r := &ceReceiver{}
	c, err := cloudevents.NewClientHTTP(cehttp.WithListener(l), cehttp.WithMiddleware(r.middleware))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.StartReceiver(ctx, r.receive); err != nil {
			t.Errorf("receiver: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func newCloudEvents(t testing.TB, url string, mode sink.Mode, o sink.HTTP) *sink.CloudEvents {
	t.Helper()
	if o.DialControl == nil {
		o.DialControl = loopback
	}
	s, err := sink.NewCloudEvents(sink.CloudEventsConfig{URL: url, Mode: mode, HTTP: o})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestCloudEventsModes(t *testing.T) {
	for _, tc := range []struct {
		mode        sink.Mode
		contentType string
	}{
		{"", "application/json"}, // the default: binary
		{sink.Binary, "application/json"},
		{sink.Structured, "application/cloudevents+json"},
	} {
		t.Run(string(tc.mode)+"Mode", func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			r := startCEReceiver(t, l)
			s := newCloudEvents(t, "http://"+l.Addr().String()+"/", tc.mode, sink.HTTP{})
			evs := events(3, 4)
			deliver(t, s, evs, nil)
			r.got.check(t, evs)
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, ct := range r.contentTypes {
				if !strings.HasPrefix(ct, tc.contentType) {
					t.Fatalf("Content-Type %q, want %s", ct, tc.contentType)
				}
			}
			checkCloudEvent(t, r.evs[0], evs[0])
		})
	}
}

// checkCloudEvent compares the attributes the receiver decoded with the event sent.
func checkCloudEvent(t *testing.T, got event.Event, ev sink.Event) {
	t.Helper()
	if got.SpecVersion() != "1.0" || got.ID() != ev.ID || got.Type() != "io.cardplane.card.updated" ||
		got.Source() != ev.Source || got.Subject() != ev.Subject || !got.Time().Equal(ev.Time) ||
		got.DataContentType() != "application/json" {
		t.Errorf("received %s", got)
	}
	var sent, data map[string]any
	_ = json.Unmarshal(ev.Data, &sent)
	if err := got.DataAs(&data); err != nil || data["metadata"] == nil {
		t.Errorf("data %s (%v), want %s", got.Data(), err, ev.Data)
	}
}

func TestCloudEventsDownThenUp(t *testing.T) {
	for _, mode := range []sink.Mode{sink.Binary, sink.Structured} {
		t.Run(string(mode), func(t *testing.T) {
			testHTTPDownThenUp(t,
				func(t *testing.T, url string) sink.Sink { return newCloudEvents(t, url, mode, sink.HTTP{}) },
				func(t *testing.T, got *received) http.Handler {
					p, err := cehttp.New()
					if err != nil {
						t.Fatal(err)
					}
					h, err := cloudevents.NewHTTPReceiveHandler(context.Background(), p, func(e event.Event) {
						var data struct {
							Metadata struct{ Name string }
						}
						_ = e.DataAs(&data)
						got.add("uid-"+data.Metadata.Name, e.ID())
					})
					if err != nil {
						t.Fatal(err)
					}
					return h
				})
		})
	}
}

// TestCloudEventsRefused: a receiver's 4xx is permanent, its 5xx retryable.
func TestCloudEventsRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := startCEReceiver(t, l)
	s := newCloudEvents(t, "http://"+l.Addr().String()+"/", sink.Binary, sink.HTTP{})
	for status, perm := range map[int]bool{http.StatusBadRequest: true, http.StatusInternalServerError: false} {
		r.mu.Lock()
		r.answer = cehttp.NewResult(status, "refused")
		r.mu.Unlock()
		err := s.Send(context.Background(), events(1, 1)[0])
		var serr *sink.Error
		if !errors.As(err, &serr) || serr.Status != status || sink.Permanent(err) != perm {
			t.Errorf("receiver answered %d: %v (permanent %t)", status, err, sink.Permanent(err))
		}
	}
}

// TestHTTPSinksMTLS: a destination that requires a client certificate from its CA takes the sinks' deliveries
// with the certificate and refuses them without; a destination whose CA is not trusted is refused by the sink.
func TestHTTPSinksMTLS(t *testing.T) {
	p := newPKI(t)
	var got received
	ceProto, err := cehttp.New()
	if err != nil {
		t.Fatal(err)
	}
	ceHandler, err := cloudevents.NewHTTPReceiveHandler(context.Background(), ceProto, func(e event.Event) {
		got.add("ce", e.ID())
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ce", ceHandler)
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		got.add("hook", r.Header.Get("webhook-id"))
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = p.serverTLS(true)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	srv.StartTLS()
	defer srv.Close()

	sinks := func(o sink.HTTP) map[string]sink.Sink {
		return map[string]sink.Sink{
			"webhook":     newWebhook(t, srv.URL+"/hook", o),
			"cloudevents": newCloudEvents(t, srv.URL+"/ce", sink.Binary, o),
		}
	}
	ev := events(1, 1)[0]
	for name, s := range sinks(sink.HTTP{TLS: p.clientTLS(true)}) {
		if err := s.Send(context.Background(), ev); err != nil {
			t.Errorf("%s with a client certificate: %v", name, err)
		}
	}
	if got.count() != 2 {
		t.Fatalf("%d deliveries with a client certificate, want 2", got.count())
	}
	for name, s := range sinks(sink.HTTP{TLS: p.clientTLS(false), Timeout: 2 * time.Second}) {
		if err := s.Send(context.Background(), ev); err == nil {
			t.Errorf("%s without a client certificate: delivered", name)
		}
	}
	for name, s := range sinks(sink.HTTP{TLS: sink.TLS{Cert: p.clientCert, Key: p.clientKey}}) {
		if err := s.Send(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s to a destination of an untrusted CA: %v", name, err)
		}
	}
	if got.count() != 2 {
		t.Errorf("%d deliveries, want only the 2 with a client certificate", got.count())
	}
}
