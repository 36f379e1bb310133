// Package projection delivers object states to the WebhookEndpoints' destinations and to the CardEventSinks,
// on one machinery: a queue per target that sends each object's latest state, in order, at least once, with
// retries, a circuit breaker and a checkpoint. The Dispatcher decides what to deliver; the transports of
// internal/sink send it (a destination is a Standard Webhooks sink: webhook-id, webhook-timestamp,
// webhook-signature "v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>", so consumers verify with any
// Standard Webhooks library).
package projection

import (
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/sink"
)

// Envelope is the body of every Standard Webhooks delivery: {"type": "card.updated", "timestamp": ..., "data": {...}}.
type Envelope struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      any       `json:"data"`
}

// Network is the manager-wide policy of every outbound connection, destinations and sinks alike.
type Network struct {
	// AllowLoopback permits loopback destinations and sinks (cardplane dev: --allow-loopback-destinations).
	AllowLoopback bool
	// RootCAs, when set, replaces the system roots HTTPS destinations are verified with (a target's own CA
	// bundle, tls.caSecretRef, replaces both).
	RootCAs *x509.CertPool
}

var (
	// ErrForbiddenAddress is a destination that resolves to an address the endpoint may not reach.
	ErrForbiddenAddress = errors.New("destination address is not public")
	// ErrInsecureDestination is a confidential message (a one-time code) for a plain http:// destination.
	ErrInsecureDestination = errors.New("one-time codes go only to https:// destinations (plain http:// only to loopback, with --allow-loopback-destinations)")
)

// dial is the address policy of a target: public addresses, the special-purpose ranges allowed lists (an
// endpoint's destinationPolicy, or --sink-allowed-cidrs), loopback only with AllowLoopback; link-local and
// metadata addresses never.
func (n *Network) dial(allowed []netip.Prefix) sink.DialControl {
	g := &guard{allowed: allowed, allowLoopback: n.AllowLoopback}
	g.init()
	return g.control
}

// confidentialDial is the address policy of a one-time code to rawURL through h: the target's policy over
// https; over plain http only a loopback URL with AllowLoopback (cardplane dev), connected to on loopback only
// and never through a proxy (which would carry the code on in plain text). False when the code may not go
// there at all.
func (n *Network) confidentialDial(rawURL string, h *cardsv1alpha1.HTTPSinkOptions, allowed []netip.Prefix) (sink.DialControl, bool) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, false
	}
	if u.Scheme == "https" {
		return n.dial(allowed), true
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	if u.Scheme != "http" || !n.AllowLoopback || (host != "localhost" && (ip == nil || !ip.IsLoopback())) || (h != nil && h.ProxyURL != "") {
		return nil, false
	}
	g := &guard{allowLoopback: true, loopbackOnly: true}
	g.init()
	return g.control, true
}
