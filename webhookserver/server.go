// Package webhookserver is the receiver: it routes provider callbacks to their WebhookEndpoint, verifies and
// decodes them with the provider's adapter, applies the events through the API server and only then answers
// the provider with its success format. It runs on every replica and keeps no state that correctness needs.
package webhookserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/text"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
	"github.com/cardplane/cardplane/webhookserver/ingest"
	"github.com/cardplane/cardplane/webhookserver/spool"
)

// +kubebuilder:rbac:groups=cards.cardplane.io,resources=cards;cardtransactions,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=cards.cardplane.io,resources=cards/status;cardtransactions/status,verbs=get;patch
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
	// StoreTimeout bounds the API writes of one callback (default 3s): past it the events go to the spool (or
	// the provider gets a 5xx) well inside providers' answer windows (UPay: 5 s).
	StoreTimeout time.Duration
	// ReviewToken is the bearer token callers of /v1alpha1/authorizationreviews must present; empty disables
	// the endpoint.
	ReviewToken string
}

// DefaultMaxBodyBytes is 1 MiB: provider callbacks are a few KiB.
const DefaultMaxBodyBytes = 1 << 20

// Authorizer decides real-time authorization requests (the rules engine).
type Authorizer interface {
	// Authorize decides within ctx's deadline (answering a stand-in decision when it passes).
	Authorize(ctx context.Context, card *cardsv1alpha1.Card, req *event.AuthorizationRequest) cardsv1alpha1.AuthorizationDecision
}

// ChallengeSink takes one-time codes to the destinations that subscribe to them, from memory.
type ChallengeSink interface {
	Deliver(ctx context.Context, ep *endpointconfig.Resolved, card *cardsv1alpha1.Card, ch *event.Challenge)
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
	Now   func() time.Time

	initOnce  sync.Once
	limiters  sync.Map // endpoint UID/generation -> *rate.Limiter
	replays   *cache.LRUExpireCache
	notices   *cache.LRUExpireCache // rate limits Kubernetes Events about unknown event types
	listening atomic.Bool
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
		s.replays = cache.NewLRUExpireCache(100_000)
		s.notices = cache.NewLRUExpireCache(10_000)
	})
}

// Handler routes the receiver's paths.
func (s *Server) Handler() http.Handler {
	s.init()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhooks/{namespace}/{name}", s.serveCallback)
	mux.HandleFunc("POST /webhooks/{namespace}/{name}/{token}", s.serveCallback)
	mux.HandleFunc("POST /v1alpha1/authorizationreviews", s.serveReview)
	return mux
}

// Start serves until ctx ends, then drains in-flight callbacks for up to 20 seconds.
func (s *Server) Start(ctx context.Context) error {
	s.init()
	log := logf.FromContext(ctx).WithName("receiver")
	if !s.PlainHTTP && (s.TLSCertFile == "" || s.TLSKeyFile == "") {
		return errors.New("the receiver needs --webhook-tls-cert-file and --webhook-tls-key-file, or --webhook-plain-http to serve without TLS")
	}
	srv := &http.Server{
		Addr:              s.Addr,
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("receiver: %w", err)
	}
	s.listening.Store(true)
	defer s.listening.Store(false)
	errc := make(chan error, 1)
	go func() {
		if s.PlainHTTP {
			errc <- srv.Serve(ln)
		} else {
			errc <- srv.ServeTLS(ln, s.TLSCertFile, s.TLSKeyFile)
		}
	}()
	log.Info("Receiver listening", "address", ln.Addr().String(), "tls", !s.PlainHTTP)
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

// call is what the receiver learned about one callback, for metrics and counters.
type call struct {
	endpoint, provider, event, result string
	key                               types.NamespacedName
	known                             bool // the endpoint exists, so its counters apply
}

func (s *Server) serveCallback(w http.ResponseWriter, r *http.Request) {
	received := s.Now()
	c := &call{key: types.NamespacedName{Namespace: r.PathValue("namespace"), Name: r.PathValue("name")}}
	defer func() {
		requestsTotal.WithLabelValues(c.endpoint, c.provider, c.event, c.result).Inc()
		requestDuration.WithLabelValues(c.provider).Observe(time.Since(received).Seconds())
	}()
	ctx := r.Context()

	ep := &cardsv1alpha1.WebhookEndpoint{}
	if err := s.Reader.Get(ctx, c.key, ep); err != nil {
		if client.IgnoreNotFound(err) == nil {
			s.refuse(w, c, http.StatusNotFound, cardsv1alpha1.ReasonNotFound, "no WebhookEndpoint "+c.key.String())
			return
		}
		s.refuse(w, c, http.StatusServiceUnavailable, cardsv1alpha1.ReasonNotReady, "cannot read the endpoint; retry")
		return
	}
	c.endpoint, c.provider, c.known = c.key.String(), string(ep.Spec.Provider), true
	s.Counters.Received(c.key)

	ready := apimeta.FindStatusCondition(ep.Status.Conditions, cardsv1alpha1.ConditionReady)
	if ready == nil || ready.Status != "True" || ready.ObservedGeneration != ep.Generation {
		msg := "endpoint is not Ready"
		if ready != nil && ready.Status != "True" {
			msg += ": " + ready.Reason + ": " + ready.Message
		}
		w.Header().Set("Retry-After", "10")
		s.refuse(w, c, http.StatusServiceUnavailable, cardsv1alpha1.ReasonNotReady, msg)
		return
	}
	cfg, err := endpointconfig.Resolve(ctx, s.Reader, ep)
	if err != nil {
		w.Header().Set("Retry-After", "10")
		s.refuse(w, c, http.StatusServiceUnavailable, cardsv1alpha1.ReasonNotReady, "endpoint is not Ready: "+err.Error())
		return
	}
	if !s.authentic(w, r, c, cfg) {
		return
	}
	if lim := s.limiter(ep); lim != nil && !lim.Allow() {
		w.Header().Set("Retry-After", "1")
		s.refuse(w, c, http.StatusTooManyRequests, cardsv1alpha1.ReasonRateLimited, "rate limit of this endpoint exceeded; retry")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.refuse(w, c, http.StatusRequestEntityTooLarge, cardsv1alpha1.ReasonTooLarge, fmt.Sprintf("body is larger than %d bytes", s.MaxBodyBytes))
			return
		}
		s.refuse(w, c, http.StatusBadRequest, cardsv1alpha1.ReasonMalformed, "could not read the body: "+err.Error())
		return
	}
	ad := s.Adapters[ep.Spec.Provider]
	if ad == nil {
		s.refuse(w, c, http.StatusServiceUnavailable, cardsv1alpha1.ReasonNotReady, "no adapter for provider "+string(ep.Spec.Provider))
		return
	}
	res, err := ad.Decode(&adapter.Request{Header: r.Header, Body: body, Received: received, Endpoint: cfg})
	if err != nil {
		if rej, ok := adapter.AsRejection(err); ok {
			s.refuse(w, c, rej.Status, rej.Reason, rej.Message)
			return
		}
		s.refuse(w, c, http.StatusBadRequest, cardsv1alpha1.ReasonMalformed, err.Error())
		return
	}
	c.event = metricEvent(res)

	replayKey := ""
	if res.ReplayKey != "" {
		replayKey = string(ep.UID) + "/" + res.ReplayKey
		if prev, ok := s.replays.Get(replayKey); ok {
			// The same delivery again (a replay, or a retry after our answer was lost): it was applied
			// already, so it gets the same answer and changes nothing.
			c.result = "duplicate"
			s.Counters.Accepted(c.key, received, false, true, false)
			write(w, prev.(adapter.Answer))
			return
		}
	}
	if res.Unknown {
		c.result = "unknown"
		s.Counters.Accepted(c.key, received, false, false, true)
		s.notice(ep, "UnknownEvent", fmt.Sprintf("acknowledged a verified %s callback of unknown event type %q without applying it", ep.Spec.Provider, text.Clip(res.EventType, 64)))
		s.remember(replayKey, res.Ack, cfg)
		write(w, res.Ack)
		return
	}
	for i := range res.Events {
		if err := ingest.Fit(&res.Events[i]); err != nil {
			s.refuse(w, c, http.StatusBadRequest, cardsv1alpha1.ReasonMalformed, err.Error())
			return
		}
	}

	if res.Authorize != nil && len(res.Events) == 1 && res.Events[0].Authorization != nil {
		s.serveAuthorization(w, c, cfg, &res.Events[0], res, replayKey, received)
		return
	}

	answer := res.Ack
	applied := false
	storeCtx, cancelStore := context.WithTimeout(ctx, s.StoreTimeout)
	defer cancelStore()
	for i := range res.Events {
		ev := &res.Events[i]
		out, err := s.Ingester.Apply(storeCtx, cfg, ev, received)
		if err != nil {
			if s.spool(ctx, c, cfg, res.Events[i:], received, err) {
				// Durable in the spool: the provider gets its success answer, the replayer applies it later.
				c.result = "spooled"
				s.Counters.Accepted(c.key, received, true, false, false)
				s.remember(replayKey, answer, cfg)
				write(w, answer)
				return
			}
			logf.FromContext(ctx).Error(err, "Storing a callback failed; the provider will retry", "endpoint", c.key, "event", c.event)
			w.Header().Set("Retry-After", "3")
			s.refuse(w, c, http.StatusServiceUnavailable, cardsv1alpha1.ReasonStoreFailed, "the event could not be stored; retry")
			return
		}
		applied = applied || out.Changed
		if out.NoCard {
			s.notice(ep, "NoCardForHolder", fmt.Sprintf("%s %s for a holder with no card yet; nothing stored", ep.Spec.Provider, ev.Type))
		}
		var card *cardsv1alpha1.Card
		if len(out.Cards) > 0 {
			card = out.Cards[0]
		}
		if ev.Challenge != nil {
			if s.Challenges != nil {
				s.Challenges.Deliver(ctx, cfg, card, ev.Challenge)
			} else {
				challengesDropped.WithLabelValues(c.endpoint).Inc()
			}
			ev.Challenge.Code = "" // not kept a moment longer than needed
		}
	}
	if c.result == "" {
		c.result = "applied"
		if !applied {
			c.result = "duplicate"
		}
	}
	s.Counters.Accepted(c.key, received, applied, !applied, false)
	s.remember(replayKey, answer, cfg)
	write(w, answer)
}

// spool appends the events a failed write left undone; it reports whether they are durable now.
func (s *Server) spool(ctx context.Context, c *call, cfg *endpointconfig.Resolved, events []event.Event, received time.Time, cause error) bool {
	if s.Spool == nil || !spoolable(cause) {
		return false
	}
	entries := make([]spool.Entry, 0, len(events))
	for _, ev := range events {
		entries = append(entries, spool.Entry{Endpoint: c.key, Received: received, Event: ev})
	}
	if err := s.Spool.Append(entries...); err != nil {
		if errors.Is(err, spool.ErrFull) {
			spoolFull.Inc()
		}
		logf.Log.Error(err, "Spooling failed; answering 5xx", "endpoint", c.key)
		return false
	}
	spoolAppended.Add(float64(len(entries)))
	// One-time codes are not spooled: they go to their destinations from memory now, card or no card.
	for _, ev := range events {
		if ev.Challenge != nil && s.Challenges != nil {
			s.Challenges.Deliver(ctx, cfg, nil, ev.Challenge)
		}
	}
	return true
}

func metricEvent(res *adapter.Result) string {
	if res.Unknown || res.EventType == "" {
		return "unknown"
	}
	return text.Clip(res.EventType, 64)
}

func (s *Server) remember(key string, a adapter.Answer, cfg *endpointconfig.Resolved) {
	if key != "" {
		s.replays.Add(key, a, 2*cfg.TimestampTolerance)
	}
}

// serveAuthorization answers a real-time authorization request (UPay CC_AUTHORIZATION) within the budget,
// counted from when the request arrived: the card is read from the cache (and created only on first sight),
// the decision (with its spend-ledger write) is made, the provider gets its answer, and only then is the
// pending transaction with the decision written. A provider retry of the same request gets the same answer.
func (s *Server) serveAuthorization(w http.ResponseWriter, c *call, cfg *endpointconfig.Resolved, ev *event.Event,
	res *adapter.Result, replayKey string, received time.Time) {
	ctx, cancel := context.WithDeadline(context.Background(), received.Add(s.AuthorizationBudget))
	defer cancel()
	c.result = "authorized"
	card, err := s.Ingester.FindCard(ctx, cfg, ev.CardID)
	if err == nil && card == nil {
		var out *ingest.Result
		if out, err = s.Ingester.Apply(ctx, cfg, ev, received); err == nil && len(out.Cards) > 0 {
			card = out.Cards[0]
		}
	}
	var d cardsv1alpha1.AuthorizationDecision
	switch {
	case err != nil || card == nil:
		// Without the card no rule can be evaluated: the provider's deadline still holds, so decline
		// (there is no rule set to name a stand-in).
		d = cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionDeclined, Reason: cardsv1alpha1.DecisionCardUnavailable}}
	case s.Authorizer != nil:
		d = s.Authorizer.Authorize(ctx, card, ev.Authorization)
	default:
		d = cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionApproved, Reason: cardsv1alpha1.DecisionNoRuleSet}}
	}
	d.LatencyMicroseconds = s.Now().Sub(received).Microseconds()
	answer := res.Authorize(d.Outcome == cardsv1alpha1.DecisionApproved)
	s.remember(replayKey, answer, cfg)
	write(w, answer)
	s.Counters.Accepted(c.key, received, true, false, false)

	// The record: after the answer, with its own time.
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	out, err := s.Ingester.Apply(rctx, cfg, ev, received)
	if err == nil && out.Transaction != nil {
		if out.Transaction.Status.Authorization != nil {
			return // decided before (a retry that reached another replica): the first record stands
		}
		err = s.Ingester.RecordDecision(rctx, out.Transaction, d, s.Now())
	}
	if err != nil {
		logf.FromContext(rctx).Error(err, "Recording an authorization decision failed", "endpoint", c.key)
	}
}

// authentic checks the URL token and the source address for endpoints that use them.
func (s *Server) authentic(w http.ResponseWriter, r *http.Request, c *call, cfg *endpointconfig.Resolved) bool {
	token := r.PathValue("token")
	switch {
	case cfg.URLToken == "" && token != "":
		s.refuse(w, c, http.StatusNotFound, cardsv1alpha1.ReasonNotFound, "this endpoint takes no URL token")
		return false
	case cfg.URLToken != "" && !adapter.Equal([]byte(token), []byte(cfg.URLToken)):
		s.refuse(w, c, http.StatusUnauthorized, cardsv1alpha1.ReasonInvalidURLToken, "missing or wrong URL token")
		return false
	}
	if len(cfg.SourcePrefixes) > 0 {
		ip := clientIP(r, cfg.TrustedProxies)
		allowed := false
		for _, p := range cfg.SourcePrefixes {
			allowed = allowed || (ip.IsValid() && p.Contains(ip))
		}
		if !allowed {
			s.refuse(w, c, http.StatusForbidden, cardsv1alpha1.ReasonSourceNotAllowed, "source address "+ip.String()+" is not in verification.sourceCIDRs")
			return false
		}
	}
	return true
}

// clientIP is the peer address, or, when the peer is a trusted proxy, the nearest untrusted address in
// X-Forwarded-For (read from the right, as each proxy appends).
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if !isTrusted(ip) {
		return ip
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}
		}
		a = a.Unmap()
		if !isTrusted(a) {
			return a
		}
	}
	return ip
}

func (s *Server) limiter(ep *cardsv1alpha1.WebhookEndpoint) *rate.Limiter {
	rl := ep.Spec.RateLimit
	if rl == nil {
		return nil
	}
	key := fmt.Sprintf("%s/%d", ep.UID, ep.Generation)
	if l, ok := s.limiters.Load(key); ok {
		return l.(*rate.Limiter)
	}
	burst := int(rl.Burst)
	if burst == 0 {
		burst = int(rl.RequestsPerSecond)
	}
	l, _ := s.limiters.LoadOrStore(key, rate.NewLimiter(rate.Limit(rl.RequestsPerSecond), burst))
	return l.(*rate.Limiter)
}

// notice records a Kubernetes Event on the endpoint, at most once per reason and message every 10 minutes.
func (s *Server) notice(ep *cardsv1alpha1.WebhookEndpoint, reason, msg string) {
	key := string(ep.UID) + "/" + reason + "/" + msg
	if _, seen := s.notices.Get(key); seen || s.Recorder == nil {
		return
	}
	s.notices.Add(key, true, 10*time.Minute)
	s.Recorder.Eventf(ep, nil, corev1.EventTypeWarning, reason, "Receive", "%s", msg)
}

type problem struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func (s *Server) refuse(w http.ResponseWriter, c *call, status int, reason, msg string) {
	c.result = reason
	if c.known {
		s.Counters.Rejected(c.key, reason)
	}
	body, _ := json.Marshal(problem{Reason: reason, Message: msg})
	write(w, adapter.Answer{Status: status, ContentType: "application/json", Body: body})
}

func write(w http.ResponseWriter, a adapter.Answer) {
	if a.ContentType != "" {
		w.Header().Set("Content-Type", a.ContentType)
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	status := a.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(a.Body)
}
