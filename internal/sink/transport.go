package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

// TLS configures the TLS connections of a sink. The zero value verifies the destination with RootCAs and
// presents no client certificate.
type TLS struct {
	// CA is a PEM bundle that replaces the default roots: the destination's certificate must chain to one of
	// these (a private CA).
	CA []byte
	// Cert and Key are a PEM client certificate and its key, presented to destinations that require one (mTLS).
	Cert []byte
	Key  []byte
	// ServerName overrides the name the destination's certificate is verified for (default: the host dialed).
	ServerName string
	// RootCAs are the default roots when CA is empty; nil means the system's.
	RootCAs *x509.CertPool
}

// ErrTLSConfig is a CA bundle or client certificate that does not parse.
var ErrTLSConfig = errors.New("invalid TLS configuration")

// config builds the client TLS configuration. Certificates are parsed once, here: a rotated Secret is a new
// sink (see Rotating), so nothing is read again per connection.
func (t *TLS) config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: t.RootCAs, ServerName: t.ServerName}
	if len(t.CA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(t.CA) {
			return nil, fmt.Errorf("%w: the CA bundle holds no PEM certificate", ErrTLSConfig)
		}
		c.RootCAs = pool
	}
	if len(t.Cert) > 0 || len(t.Key) > 0 {
		pair, err := tls.X509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %w", ErrTLSConfig, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// DialControl vets every address a sink connects to, after DNS resolution (a net.Dialer Control function).
// Returning an error refuses the connection.
type DialControl func(network, address string, c syscall.RawConn) error

// PublicOnly is the default DialControl: public addresses only, every range of the IANA special-purpose
// registries refused (code.dny.dev/ssrf), on any port. The projection's guard is stricter about what an
// allow-list may open and is what the caller passes in production.
func PublicOnly() DialControl {
	return ssrf.New(ssrf.WithAnyPort()).Safe
}

// dialer returns a dialer whose refusals wrap ErrForbiddenAddress, so they classify as permanent whatever
// policy refused them.
func dialer(control DialControl, timeout time.Duration) *net.Dialer {
	if control == nil {
		control = PublicOnly()
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second,
		Control: func(network, address string, c syscall.RawConn) error {
			if err := control(network, address, c); err != nil {
				return fmt.Errorf("%w: %w", ErrForbiddenAddress, err)
			}
			return nil
		}}
}

// tlsDial is a DialContext through the address policy, with TLS when t is set.
func tlsDial(control DialControl, t *TLS) (func(ctx context.Context, network, address string) (net.Conn, error), error) {
	d := dialer(control, 10*time.Second)
	if t == nil {
		return d.DialContext, nil
	}
	tc, err := t.config()
	if err != nil {
		return nil, err
	}
	return dialFunc(d, tc), nil
}

// dialFunc is a DialContext that does TLS itself when tc is set (for clients, like franz-go's, that take one
// dial function for both).
func dialFunc(d *net.Dialer, tc *tls.Config) func(ctx context.Context, network, address string) (net.Conn, error) {
	if tc == nil {
		return d.DialContext
	}
	td := &tls.Dialer{NetDialer: d, Config: tc}
	return td.DialContext
}

// classifyNetwork marks an address-policy refusal permanent and everything else retryable.
func classifyNetwork(err error) error {
	if errors.Is(err, ErrForbiddenAddress) || errors.Is(err, ErrTLSConfig) {
		return permanent(err)
	}
	return retryable(err)
}
