// Package projection delivers object states to external HTTP destinations, signed per the Standard Webhooks
// spec (webhook-id, webhook-timestamp, webhook-signature "v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>"),
// so consumers verify them with any Standard Webhooks library. The reconcilers decide what to deliver and keep
// the cursors; this package only sends.
package projection

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"
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
	// AllowPrivate permits loopback, private and link-local destination addresses.
	AllowPrivate bool
}

// Sender sends messages. It is safe for concurrent use.
type Sender struct {
	// AllowLoopback permits loopback destinations for every endpoint (cardplane dev).
	AllowLoopback bool
	Now           func() time.Time

	once            sync.Once
	strict, private *http.Client
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

// ErrForbiddenAddress is a destination that resolves to an address the endpoint may not reach.
var ErrForbiddenAddress = errors.New("destination address is loopback, private or link-local; set spec.allowPrivateDestinations to allow it")

// Sign returns the Standard Webhooks headers for body.
func Sign(id string, ts time.Time, body, secret []byte) http.Header {
	t := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(id + "." + t + "."))
	mac.Write(body)
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", t)
	h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
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
	s.once.Do(func() { s.strict, s.private = s.client(false), s.client(true) })
	c := s.strict
	if m.AllowPrivate {
		c = s.private
	}
	resp, err := c.Do(req)
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
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), now())
	}
	return e
}

func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// client checks every address it connects to, after DNS resolution, so a name that resolves (or re-resolves)
// to an internal address is refused: the server-side request forgery guard.
func (s *Sender) client(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		if !allowed(ap.Addr().Unmap(), allowPrivate, s.AllowLoopback) {
			return fmt.Errorf("%w (%s)", ErrForbiddenAddress, ap.Addr())
		}
		return nil
	}}
	return &http.Client{
		Transport: &http.Transport{DialContext: dialer.DialContext, Proxy: nil, MaxIdleConnsPerHost: 4,
			IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second},
		// A redirect could lead anywhere; a destination must answer itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func allowed(ip netip.Addr, allowPrivate, allowLoopback bool) bool {
	if allowPrivate {
		return true
	}
	if ip.IsLoopback() {
		return allowLoopback
	}
	internal := ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() ||
		ip.IsMulticast() || ip.IsInterfaceLocalMulticast() || carrierGradeNAT.Contains(ip)
	return !internal
}

var carrierGradeNAT = netip.MustParsePrefix("100.64.0.0/10")
