// Package webhookserver is the receiver: it routes provider callbacks to their WebhookEndpoint, verifies and
// decodes them with the provider's adapter, applies the events through the API server and only then answers
// the provider with its success format. It runs on every replica and keeps no state that correctness needs.
//
// A callback goes through named steps (callback.go): route → admit → read → decode → answer, where answer is
// one of: a cached answer (the same delivery again), an acknowledgement of an unknown event type, a real-time
// authorization decision (authorization.go), or apply (ingest, or the spool when the API server cannot take it).
package webhookserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/decisionlog"
	"github.com/cardplane/cardplane/internal/projection"
	"github.com/cardplane/cardplane/internal/rules"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/ingest"
	"github.com/cardplane/cardplane/webhookserver/spool"
)

// +kubebuilder:rbac:groups=cards.cardplane.io,resources=cards;cardtransactions;cardholders,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=cards.cardplane.io,resources=cards/status;cardtransactions/status;cardholders/status,verbs=get;patch
// +kubebuilder:rbac:groups=cards.cardplane.io,resources=webhookendpoints/status,verbs=get;patch

// Options configure the HTTP server.
type Options struct {
	// Addr is the listen address, e.g. ":9443".
	Addr string
	// TLSCertFile and TLSKeyFile serve HTTPS (the chart mounts them from a Secret).
	TLSCertFile, TLSKeyFile string
	// PlainHTTP serves without TLS; it must be asked for explicitly (cardplane dev, or TLS ended by a proxy).
	PlainHTTP bool
	// MaxBodyBytes caps a callback body; larger ones are answered 413.
	MaxBodyBytes int64
	// AuthorizationBudget bounds the time to answer a real-time authorization request.
	AuthorizationBudget time.Duration
	// RefusedPerSource is how many refused callbacks per second (burst five times that) a source address may
	// send before its requests are refused unread (429); negative disables the limit. TrustedProxies are the
	// load balancers whose X-Forwarded-For names the source.
	RefusedPerSource float64
	TrustedProxies   []netip.Prefix
	// StoreTimeout bounds the API writes of one callback (default 3s): past it the events go to the spool (or
	// the provider gets a 5xx) well inside providers' answer windows (UPay: 5 s).
	StoreTimeout time.Duration
}

// DefaultRefusedPerSource is 20 refused callbacks a second (burst 100) per source address: far above what a
// provider's misconfiguration produces, far below a flood.
const DefaultRefusedPerSource = 20

// DefaultMaxBodyBytes is 1 MiB: provider callbacks are a few KiB.
const DefaultMaxBodyBytes = 1 << 20

// Authorizer decides real-time authorization requests (the rules engine).
type Authorizer interface {
	// Decide decides within ctx's deadline (answering a stand-in decision when it passes).
	Decide(ctx context.Context, card *cardsv1alpha1.Card, tx rules.Transaction) cardsv1alpha1.AuthorizationDecision
	// Ready reports whether every rule set present at start is loaded; before, no decision is answered.
	Ready() bool
}

// ChallengeSink takes one-time codes to the destinations that subscribe to them, from memory
// (projection.ChallengeForwarder).
type ChallengeSink interface {
	Deliver(ctx context.Context, ep *cardsv1alpha1.WebhookEndpoint, card *cardsv1alpha1.Card, ch *projection.Challenge)
}

// Server is the receiver.
type Server struct {
	Options
	// Reader reads WebhookEndpoints and Secrets, from the manager's cache.
	Reader     client.Reader
	Ingester   *ingest.Ingester
	Adapters   map[cardsv1alpha1.Provider]adapter.Adapter
	Recorder   events.EventRecorder
	Authorizer Authorizer
	Challenges ChallengeSink
	Counters   *Counters
	// Spool, when set, keeps verified events the API server cannot take so the provider can be answered.
	Spool *spool.Spool
	// Decisions, when set, is the decision log every answered authorization is written to.
	Decisions *decisionlog.Logger
	Now       func() time.Time

	initOnce sync.Once
	limiters *limiterSet // endpoint UID/generation -> its rate limit
	sources  *limiterSet // source address -> its budget of refused requests
	answers  *answerCache
	// background is the work started after an answer left (decision records); shutdown waits for it.
	background sync.WaitGroup
	done       chan struct{}         // closed when Start has stopped serving and the background work is done
	notices    *cache.LRUExpireCache // rate limits Kubernetes Events about unknown event types
	listening  atomic.Bool
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		if s.Now == nil {
			s.Now = time.Now
		}
		if s.MaxBodyBytes <= 0 {
			s.MaxBodyBytes = DefaultMaxBodyBytes
		}
		if s.AuthorizationBudget <= 0 {
			s.AuthorizationBudget = 1500 * time.Millisecond
		}
		if s.StoreTimeout <= 0 {
			s.StoreTimeout = 3 * time.Second
		}
		if s.Counters == nil {
			s.Counters = &Counters{}
		}
		if s.RefusedPerSource == 0 {
			s.RefusedPerSource = DefaultRefusedPerSource
		}
		s.limiters, s.sources = newLimiterSet(10_000), newLimiterSet(100_000)
		s.answers = newAnswerCache(100_000)
		s.done = make(chan struct{})
		s.notices = cache.NewLRUExpireCache(10_000)
	})
}

// Handler routes the receiver's paths.
func (s *Server) Handler() http.Handler {
	s.init()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhooks/{namespace}/{name}", s.serveCallback)
	mux.HandleFunc("POST /webhooks/{namespace}/{name}/{token}", s.serveCallback)
	return mux
}

// Start serves until ctx ends, then drains in-flight callbacks for up to 20 seconds.
func (s *Server) Start(ctx context.Context) error {
	s.init()
	l := Listen{Addr: s.Addr, CertFile: s.TLSCertFile, KeyFile: s.TLSKeyFile, PlainHTTP: s.PlainHTTP, listening: &s.listening}
	err := l.serve(ctx, "receiver", s.Handler())
	s.background.Wait() // decision records of answers already given: written or spooled, never dropped
	close(s.done)
	return err
}

// Done is closed once the receiver stopped taking callbacks and finished what they started.
func (s *Server) Done() <-chan struct{} {
	s.init()
	return s.done
}

// Listen is where and how a server of the manager serves: TLS from files reloaded when they change on disk
// (cert-manager renews them in place), or plain HTTP when asked for explicitly.
type Listen struct {
	Addr              string
	CertFile, KeyFile string
	PlainHTTP         bool
	listening         *atomic.Bool
}

// serve serves handler until ctx ends, then drains in-flight requests for up to 20 seconds.
func (l Listen) serve(ctx context.Context, name string, handler http.Handler) error {
	log := logf.FromContext(ctx).WithName(name)
	if !l.PlainHTTP && (l.CertFile == "" || l.KeyFile == "") {
		return fmt.Errorf("the %s needs a TLS certificate and key file, or plain HTTP asked for explicitly", name)
	}
	srv := &http.Server{
		Addr:              l.Addr,
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// Requests carry the server's logger; they outlive ctx by the drain below, so not its cancellation.
		BaseContext: func(net.Listener) context.Context { return logf.IntoContext(context.WithoutCancel(ctx), log) },
	}
	if !l.PlainHTTP {
		watcher, err := certwatcher.New(l.CertFile, l.KeyFile)
		if err != nil {
			return fmt.Errorf("%s: loading the TLS certificate: %w", name, err)
		}
		go func() {
			if err := watcher.Start(ctx); err != nil {
				log.Error(err, "Watching the TLS certificate stopped; a renewed certificate is not picked up")
			}
		}()
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: watcher.GetCertificate}
	}
	ln, err := net.Listen("tcp", l.Addr)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if l.listening != nil {
		l.listening.Store(true)
		defer l.listening.Store(false)
	}
	errc := make(chan error, 1)
	go func() {
		if l.PlainHTTP {
			errc <- srv.Serve(ln)
		} else {
			errc <- srv.ServeTLS(ln, "", "")
		}
	}()
	log.Info("Listening", "address", ln.Addr().String(), "tls", !l.PlainHTTP)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// Ready is the receiver's readiness check: it fails until the receiver listens (so a new replica gets no
// traffic before it can answer) and after it stopped.
func (s *Server) Ready(*http.Request) error {
	if !s.listening.Load() {
		return errors.New("the receiver is not listening")
	}
	return nil
}

// NeedLeaderElection is false: every replica receives.
func (s *Server) NeedLeaderElection() bool { return false }

// refusal is a callback the receiver does not accept: the status, the reason (counted) and a message for the
// caller. retryAfter, in seconds, tells a provider when to try again.
type refusal struct {
	status     int
	reason     string
	message    string
	retryAfter int
}

func refuse(status int, reason, format string, args ...any) *refusal {
	return &refusal{status: status, reason: reason, message: fmt.Sprintf(format, args...)}
}

// later marks a refusal as retryable after seconds.
func (r *refusal) later(seconds int) *refusal {
	r.retryAfter = seconds
	return r
}

// problem is the JSON body of every refusal.
type problem struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// writeRefusal answers a refusal as JSON.
func writeRefusal(w http.ResponseWriter, r *refusal) {
	if r.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(r.retryAfter))
	}
	body, _ := json.Marshal(problem{Reason: r.reason, Message: r.message})
	write(w, adapter.Answer{Status: r.status, ContentType: "application/json", Body: body})
}

func write(w http.ResponseWriter, a adapter.Answer) {
	if a.ContentType != "" {
		w.Header().Set("Content-Type", a.ContentType)
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// A known length lets the caller read the whole answer as soon as it is flushed (see flush).
	w.Header().Set("Content-Length", strconv.Itoa(len(a.Body)))
	status := a.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(a.Body)
}
