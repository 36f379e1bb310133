// Package projection delivers object states to external HTTP destinations, signed per the Standard Webhooks
// spec (webhook-id, webhook-timestamp, webhook-signature "v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>"),
// so consumers verify them with any Standard Webhooks library. The Dispatcher decides what to deliver, one queue
// per destination; the Sender only sends.
package projection

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/cardplane/cardplane/internal/sink"
)

// Envelope is the body of every delivery: {"type": "card.updated", "timestamp": ..., "data": {...}}.
type Envelope struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      any       `json:"data"`
}

// Message is one signed delivery.
type Message struct {
	// ID is the webhook-id: the same for every attempt of the same state, so consumers can deduplicate.
	ID      string
	Body    []byte
	URL     string
	Secret  []byte
	Timeout time.Duration
	// AllowedCIDRs opens these special-purpose ranges to this delivery (the endpoint's
	// spec.destinationPolicy.allowedCIDRs). Loopback, link-local and metadata addresses stay refused.
	AllowedCIDRs []netip.Prefix
	// Confidential marks a body that carries a secret (a one-time code): it goes only over HTTPS, or over
	// plain HTTP to a loopback address when the Sender allows loopback (cardplane dev).
	Confidential bool
}

// Sender sends messages. It is safe for concurrent use.
type Sender struct {
	// AllowLoopback permits loopback destinations for every endpoint (cardplane dev).
	AllowLoopback bool
	Now           func() time.Time
	// RootCAs, when set, replaces the system roots HTTPS destinations are verified with.
	RootCAs *x509.CertPool

	mu sync.Mutex
	// clients holds one client per address policy: a pooled connection is reused only by deliveries that
	// may reach its address, never by another endpoint's.
	clients map[string]*http.Client
}

// Error is a failed delivery; RetryAfter is set when the destination asked for a delay (429/503).
type Error struct {
	Status     int
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("destination answered %d", e.Status)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

var (
	// ErrForbiddenAddress is a destination that resolves to an address the endpoint may not reach.
	ErrForbiddenAddress = errors.New("destination address is not public")
	// ErrInsecureDestination is a confidential message (a one-time code) for a plain http:// destination.
	ErrInsecureDestination = errors.New("one-time codes go only to https:// destinations (plain http:// only to loopback, with --allow-loopback-destinations)")
)

// Sign returns the Standard Webhooks headers for body.
func Sign(id string, ts time.Time, body, secret []byte) http.Header {
	h := http.Header{}
	sink.SignStandardWebhooks(h, id, ts, body, secret)
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "cardplane")
	return h
}

// Send delivers m once. Any 2xx is success.
func (s *Sender) Send(ctx context.Context, m Message) error {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		return &Error{Err: err}
	}
	req.Header = Sign(m.ID, now(), m.Body, m.Secret)
	g := &guard{allowLoopback: s.AllowLoopback}
	if m.Confidential && req.URL.Scheme != "https" {
		if !s.AllowLoopback {
			return &Error{Err: ErrInsecureDestination}
		}
		// Plain HTTP for a secret only to this machine: the local demo destination.
		g.loopbackOnly = true
	} else {
		g.allowed = m.AllowedCIDRs
	}
	resp, err := s.client(g).Do(req)
	if err != nil {
		return &Error{Err: err}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	e := &Error{Status: resp.StatusCode}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		e.RetryAfter = sink.ParseRetryAfter(resp.Header.Get("Retry-After"), now())
	}
	return e
}

// client returns the client of g's policy. It checks every address it connects to, after DNS resolution, so a
// name that resolves (or re-resolves) to an internal address is refused: the server-side request forgery guard.
func (s *Sender) client(g *guard) *http.Client {
	key := g.key()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[key]; ok {
		return c
	}
	if s.clients == nil || len(s.clients) >= maxClients {
		for _, c := range s.clients {
			c.CloseIdleConnections()
		}
		s.clients = map[string]*http.Client{}
	}
	g.init()
	dialer := &net.Dialer{Timeout: 5 * time.Second, Control: g.control}
	c := &http.Client{
		Transport: &http.Transport{DialContext: dialer.DialContext, Proxy: nil, MaxIdleConnsPerHost: 4,
			IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second,
			TLSClientConfig: &tls.Config{RootCAs: s.RootCAs, MinVersion: tls.VersionTLS12}},
		// A redirect could lead anywhere; a destination must answer itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.clients[key] = c
	return c
}

// maxClients bounds the clients kept: one per distinct allow-list in use, and a few more.
const maxClients = 256
