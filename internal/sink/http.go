package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// HTTP configures the client of the HTTP-based sinks (Standard Webhooks and CloudEvents): how they reach and
// authenticate to the destination.
type HTTP struct {
	// Headers are added to every request (an API key from a Secret). They never replace a header the sink
	// sets itself: the signature, the ce-* attributes, Content-Type.
	Headers http.Header
	// BearerToken, when set, is sent as "Authorization: Bearer <token>".
	BearerToken string
	// TLS verifies the destination (CA bundle) and authenticates to it (client certificate).
	TLS TLS
	// ProxyURL sends requests through this proxy (http://, https:// or socks5://; user:password@ for proxy
	// authentication). Empty: straight to the destination; the process's HTTP_PROXY is not used. With a
	// proxy, DialControl vets the proxy's address: the proxy, not the sink, reaches the destination.
	ProxyURL string
	// Timeout bounds one Send (default 10 s).
	Timeout time.Duration
	// DialControl vets every address connected to (default PublicOnly).
	DialControl DialControl
}

// ErrHTTPConfig is an HTTP option that cannot be used.
var ErrHTTPConfig = errors.New("invalid HTTP sink configuration")

// httpClient is what both HTTP sinks send with.
type httpClient struct {
	client  *http.Client
	headers http.Header
	timeout time.Duration
	now     func() time.Time
}

func newHTTPClient(o HTTP) (*httpClient, error) {
	tc, err := o.TLS.config()
	if err != nil {
		return nil, err
	}
	headers, err := extraHeaders(o)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{DialContext: dialer(o.DialControl, 0).DialContext, Proxy: nil, TLSClientConfig: tc,
		MaxIdleConnsPerHost: 8, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2: true}
	if o.ProxyURL != "" {
		u, err := url.Parse(o.ProxyURL)
		if err != nil {
			return nil, fmt.Errorf("%w: proxy URL: %w", ErrHTTPConfig, err)
		}
		switch u.Scheme {
		case "http", "https", "socks5", "socks5h":
		default:
			return nil, fmt.Errorf("%w: proxy URL scheme %q (want http, https or socks5)", ErrHTTPConfig, u.Scheme)
		}
		tr.Proxy = http.ProxyURL(u)
	}
	return &httpClient{client: &http.Client{Transport: tr,
		// A redirect could lead anywhere; a destination must answer itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, headers: headers, timeout: o.Timeout, now: time.Now}, nil
}

// extraHeaders are the configured headers, canonical (so the sink's own always win over them) and checked.
func extraHeaders(o HTTP) (http.Header, error) {
	headers := http.Header{}
	for k, vs := range o.Headers {
		lk := strings.ToLower(k)
		switch {
		case !httpguts.ValidHeaderFieldName(k):
			return nil, fmt.Errorf("%w: header name %q", ErrHTTPConfig, k)
		case strings.HasPrefix(lk, "ce-") || strings.HasPrefix(lk, "webhook-") || slices.Contains(hopHeaders, lk):
			// A ce- header would pose as an event attribute, a webhook- one as part of the signature.
			return nil, fmt.Errorf("%w: header %q is the sink's own", ErrHTTPConfig, k)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, fmt.Errorf("%w: header %q has an invalid value", ErrHTTPConfig, k)
			}
			headers.Add(k, v)
		}
	}
	if o.BearerToken != "" {
		if headers.Get("Authorization") != "" {
			return nil, fmt.Errorf("%w: an Authorization header and a bearer token", ErrHTTPConfig)
		}
		if !httpguts.ValidHeaderFieldValue(o.BearerToken) {
			return nil, fmt.Errorf("%w: the bearer token is not a valid header value", ErrHTTPConfig)
		}
		headers.Set("Authorization", "Bearer "+o.BearerToken)
	}
	return headers, nil
}

// hopHeaders are headers the HTTP client sets itself.
var hopHeaders = []string{"host", "content-length", "transfer-encoding", "connection", "te", "upgrade",
	"keep-alive", "proxy-authorization", "proxy-connection", "trailer"}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: URL: %w", ErrHTTPConfig, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: URL %q is not an absolute http:// or https:// URL", ErrHTTPConfig, raw)
	}
	return nil
}

// do sends req, whose own headers are set, adding the configured ones, and classifies the outcome. Any 2xx
// is success.
func (c *httpClient) do(req *http.Request) error {
	for k, vs := range c.headers {
		if _, set := req.Header[k]; !set {
			req.Header[k] = vs
		}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return classifyNetwork(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return statusError(resp, c.now())
}

// statusError classifies an answer: 2xx is success; 408 (timeout), 425 (too early), 429 (too many requests)
// and 5xx are worth another try; every other answer (a 4xx, or a redirect, which is never followed) says the
// destination refuses this request as it is.
func statusError(resp *http.Response, now time.Time) error {
	s := resp.StatusCode
	if s >= 200 && s < 300 {
		return nil
	}
	e := &Error{Status: s}
	switch {
	case s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable:
		e.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	case s == http.StatusRequestTimeout || s == http.StatusTooEarly || s >= 500:
	default:
		e.Permanent = true
	}
	return e
}

// ParseRetryAfter reads a Retry-After header, in seconds or as an HTTP date; 0 when absent, unreadable or past.
func ParseRetryAfter(v string, now time.Time) time.Duration {
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

func (c *httpClient) close() { c.client.CloseIdleConnections() }

// newRequest is a POST of body to u, bounded by the sink's timeout; cancel releases it after the answer.
func (c *httpClient) newRequest(ctx context.Context, u string, body io.Reader) (*http.Request, context.CancelFunc, error) {
	ctx, cancel := withTimeout(ctx, c.timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, body)
	if err != nil {
		cancel()
		return nil, nil, permanent(err)
	}
	return req, cancel, nil
}
