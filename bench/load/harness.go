package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/bench/internal/measure"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver/adapters/upay"
)

const (
	namespace         = "load"
	signingKey        = "load-upay-signing-key-0123456789"
	destinationSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// harness sends the load and watches where it arrives.
type harness struct {
	sys     *system
	cfg     config
	ep      *cardsv1alpha1.WebhookEndpoint
	signer  *endpointconfig.Resolved
	client  *http.Client
	fast    []*destination
	slow    *destination
	sinks   []*sinkReceiver // the CardEventSinks (-sinks)
	sampler *sampler
	nextTxn atomic.Int64
	mu      sync.Mutex
	acked   map[string]time.Time // provider transaction ID -> when its callback was acknowledged
}

func newHarness(ctx context.Context, sys *system, cfg config) (*harness, error) {
	h := &harness{sys: sys, cfg: cfg, acked: map[string]time.Time{},
		fast:   []*destination{newDestination("fast-a", 0), newDestination("fast-b", 0)},
		slow:   newDestination("slow", cfg.slow),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4 * cfg.workers}}}
	c := sys.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return nil, err
	}
	labels := map[string]string{cardsv1alpha1.LabelCredentials: "true"}
	secrets := []*corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "upay", Labels: labels},
		StringData: map[string]string{cardsv1alpha1.SecretKeySigningKey: signingKey}}}
	ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "upay"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay, CredentialsRef: &cardsv1alpha1.LocalObjectReference{Name: "upay"}}}
	for _, d := range append(append([]*destination{}, h.fast...), h.slow) {
		secrets = append(secrets, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: d.name, Labels: labels},
			StringData: map[string]string{cardsv1alpha1.SecretKeyDestinationSecret: destinationSecret}})
		ep.Spec.Destinations = append(ep.Spec.Destinations, cardsv1alpha1.Destination{Name: d.name, URL: d.srv.URL,
			SecretRef: cardsv1alpha1.LocalObjectReference{Name: d.name}})
	}
	for _, s := range secrets {
		if err := c.Create(ctx, s); err != nil {
			return nil, err
		}
	}
	if err := c.Create(ctx, ep); err != nil {
		return nil, err
	}
	if err := waitUntil(ctx, time.Minute, "the endpoint Ready", func() bool {
		got := &cardsv1alpha1.WebhookEndpoint{}
		_ = c.Get(ctx, client.ObjectKeyFromObject(ep), got)
		return len(got.Status.Conditions) > 0 && got.Status.Conditions[0].Status == metav1.ConditionTrue
	}); err != nil {
		return nil, err
	}
	if cfg.sinks {
		if err := h.createSinks(ctx); err != nil {
			return nil, err
		}
	}
	h.ep, h.signer = ep, &endpointconfig.Resolved{Endpoint: ep, SigningKey: []byte(signingKey)}
	h.sampler = startSampler(sys)
	return h, nil
}

// createSinks starts the sinks' receivers and creates a CardEventSink for each, and waits until they are Ready.
func (h *harness) createSinks(ctx context.Context) error {
	var err error
	if h.sinks, err = startSinks(ctx, h.sys.dir); err != nil {
		return err
	}
	c := h.sys.Client
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: webhookSecret,
		Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}},
		StringData: map[string]string{cardsv1alpha1.SecretKeyDestinationSecret: destinationSecret}}); err != nil {
		return err
	}
	for _, s := range h.sinks {
		if err := c.Create(ctx, s.object()); err != nil {
			return err
		}
	}
	return waitUntil(ctx, time.Minute, "the CardEventSinks Ready", func() bool {
		for _, s := range h.sinks {
			got := &cardsv1alpha1.CardEventSink{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(s.object()), got); err != nil || !s.ready(got) {
				return false
			}
		}
		return true
	})
}

func (h *harness) close() {
	for _, d := range append(append([]*destination{}, h.fast...), h.slow) {
		d.srv.Close()
	}
	for _, s := range h.sinks {
		s.close()
	}
}

// fastAndSinks are the receivers a phase waits for: the fast destinations and the sinks.
func (h *harness) fastAndSinks() []*arrivals {
	var out []*arrivals
	for _, d := range h.fast {
		out = append(out, d.arrivals)
	}
	for _, s := range h.sinks {
		out = append(out, s.arrivals)
	}
	return out
}

// sinkArrivals are the sinks' receivers.
func (h *harness) sinkArrivals() []*arrivals {
	out := make([]*arrivals, 0, len(h.sinks))
	for _, s := range h.sinks {
		out = append(out, s.arrivals)
	}
	return out
}

// send signs body as UPay does and posts it; an answer other than UPay's success is an error.
func (h *harness) send(ctx context.Context, body string) error {
	header, wire, err := upay.Encode(h.signer, []byte(body), time.Now())
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.sys.receiver+"/webhooks/"+namespace+"/upay", bytes.NewReader(wire))
	if err != nil {
		return err
	}
	req.Header = header
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	answer, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(answer) != "SUCCESS" {
		return fmt.Errorf("answered %d %s", resp.StatusCode, answer)
	}
	return nil
}

func cardID(i int) string { return fmt.Sprintf("LC%06d", i) }

// createCards sends one "active" status per card and waits until the fast destinations (and the sinks) have
// every card.
func (h *harness) createCards(ctx context.Context) (measure.Summary, error) {
	sum := measure.Closed{Workers: h.cfg.workers, Count: h.cfg.cards}.Run(ctx, func(i int) error {
		now := time.Now()
		return h.send(ctx, fmt.Sprintf(`{"event":"CSC_STATUS_CHANGE","trace":"t","orderNo":"LS-%d","timestamp":%d,"detail":{"cardId":%q,"cardNumber":"5326********1234","status":"1","orderNo":"LS-%d","customerNo":"C%d"}}`,
			i, now.UnixMilli(), cardID(i), i, i))
	})
	if sum.Errors > 0 {
		return sum, fmt.Errorf("%d of %d card callbacks failed: %w", sum.Errors, sum.Count, sum.FirstErr)
	}
	err := waitUntil(ctx, h.cfg.settle, "every card delivered", func() bool {
		for _, d := range h.fastAndSinks() {
			if n, _ := d.counts(); n < h.cfg.cards {
				return false
			}
		}
		return true
	})
	if err != nil {
		return sum, err
	}
	return sum, h.quiet(ctx)
}

// quiet waits until the API server takes no cardplane writes for two seconds (the card controller's
// conditions and Events for new cards), so the next phase counts only its own writes.
func (h *harness) quiet(ctx context.Context) error {
	last, err := measure.ScrapeAPIServer(ctx, h.sys.Config)
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		time.Sleep(2 * time.Second)
		now, err := measure.ScrapeAPIServer(ctx, h.sys.Config)
		if err != nil {
			return err
		}
		w := writes(last, now)
		if w["cards"]+w["cards/status"]+w["cardtransactions"]+w["cardtransactions/status"]+w["events"] == 0 {
			return nil
		}
		last = now
	}
	return nil
}

// runner is a load shape: measure.Closed (saturation) or measure.Open (a set rate).
type runner interface {
	Run(ctx context.Context, op measure.Op) measure.Summary
}

func saturation(cfg config) runner {
	return measure.Closed{Workers: cfg.workers, Count: cfg.transactions, Duration: map[bool]time.Duration{true: cfg.saturate}[cfg.transactions == 0]}
}

func paced(rate float64, d time.Duration, workers int) runner {
	return measure.Open{Rate: rate, Duration: d, MaxInFlight: 4 * workers}
}

// transactions sends settled card transactions with shape, then waits for the fast destinations to receive
// them all, and measures the phase.
func (h *harness) transactions(ctx context.Context, name string, shape runner) (*phase, error) {
	p := &phase{name: name}
	var err error
	if p.writesBefore, err = measure.ScrapeAPIServer(ctx, h.sys.Config); err != nil {
		return nil, err
	}
	p.cpuBefore = h.sys.cpu()
	var ids []string
	var idsMu sync.Mutex
	p.ingest = shape.Run(ctx, func(i int) error {
		id := fmt.Sprintf("LT%08d", h.nextTxn.Add(1))
		now := time.Now()
		body := fmt.Sprintf(`{"event":"CC_CONSUME","trace":"t","orderNo":"LO-%s","timestamp":%d,"detail":{"cardId":%q,"cardNumber":"5326********1234","orderNo":"LO-%s","customerNo":"C%d","type":2,"status":1,"amount":"12.34","direction":2,"merchantName":"Coffee Bar","currency":"USD","transactionAt":%d,"transactionId":%q,"fee":"0.00","merchantMcc":"5814","merchantCountry":"US"}}`,
			id, now.UnixMilli(), cardID(i%h.cfg.cards), id, i%h.cfg.cards, now.UnixMilli(), id)
		if err := h.send(ctx, body); err != nil {
			return err
		}
		at := time.Now()
		h.mu.Lock()
		h.acked[id] = at
		h.mu.Unlock()
		idsMu.Lock()
		ids = append(ids, id)
		idsMu.Unlock()
		return nil
	})
	sort.Strings(ids)
	p.ids = ids
	p.firstAck, p.lastAck = h.ackSpan(ids)
	p.settleErr = h.settle(ctx, p)
	p.measureDeliveries(h)
	if p.writesAfter, err = measure.ScrapeAPIServer(ctx, h.sys.Config); err != nil {
		return nil, err
	}
	return p, nil
}

// settle waits for the fast destinations to have every transaction of p, then the sinks (and, with
// -wait-slow, the slow destination), and notes when each had them and the CPU used until then.
func (h *harness) settle(ctx context.Context, p *phase) error {
	fast := make([]*arrivals, 0, len(h.fast))
	for _, d := range h.fast {
		fast = append(fast, d.arrivals)
	}
	err := waitUntil(ctx, h.cfg.settle, p.name+": every transaction at the fast destinations", func() bool { return h.delivered(p.ids, fast...) })
	p.settledFast = time.Now()
	if len(h.sinks) > 0 && err == nil {
		err = waitUntil(ctx, h.cfg.settle, p.name+": every transaction at the sinks", func() bool { return h.delivered(p.ids, h.sinkArrivals()...) })
	}
	p.cpuAfter = h.sys.cpu()
	if h.cfg.waitSlow && err == nil {
		err = waitUntil(ctx, h.cfg.settle, p.name+": every transaction at the slow destination", func() bool { return h.delivered(p.ids, h.slow.arrivals) })
	}
	return err
}

func (h *harness) ackSpan(ids []string) (first, last time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		at := h.acked[id]
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	return first, last
}

func (h *harness) delivered(ids []string, ds ...*arrivals) bool {
	for _, d := range ds {
		for _, id := range ids {
			if _, ok := d.settledAt(id); !ok {
				return false
			}
		}
	}
	return true
}

func waitUntil(ctx context.Context, d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", d, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// sampler reads the processes' memory every second and keeps the peaks.
type sampler struct {
	stopCh chan struct{}
	done   chan footprint
}

func startSampler(sys *system) *sampler {
	s := &sampler{stopCh: make(chan struct{}), done: make(chan footprint, 1)}
	go func() {
		var peak footprint
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			if m, err := measure.RSS(sys.managerPID); err == nil && m > peak.managerRSS {
				peak.managerRSS = m
			}
			if a, err := measure.RSS(sys.apiPID); err == nil && a > peak.apiRSS {
				peak.apiRSS = a
			}
			select {
			case <-s.stopCh:
				s.done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() footprint {
	close(s.stopCh)
	return <-s.done
}
