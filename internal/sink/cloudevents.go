package sink

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// Mode is a CloudEvents HTTP content mode.
type Mode string

const (
	// Binary puts the attributes in ce-* headers and the data alone in the body (the default; what Knative
	// and Argo Events expect first).
	Binary Mode = "Binary"
	// Structured sends the whole event as one application/cloudevents+json body.
	Structured Mode = "Structured"
)

// CloudEventsConfig configures a CloudEvents 1.0 HTTP sink.
type CloudEventsConfig struct {
	// URL is the destination (a Knative Broker's ingress, an Argo Events webhook event source, ...).
	URL string
	// Mode is Binary (default) or Structured.
	Mode Mode
	HTTP HTTP
}

// CloudEvents is a CloudEvents 1.0 HTTP sink. The event is encoded by the sdk-go HTTP protocol binding
// (cehttp.WriteRequest) and sent with the sink's own client, so it shares the Standard Webhooks sink's
// address policy, TLS, proxy and header options and its reading of the answer (Retry-After included, which
// the sdk-go client does not surface).
type CloudEvents struct {
	url        string
	structured bool
	http       *httpClient
}

// NewCloudEvents builds a CloudEvents sink. It connects to nothing until the first Send.
func NewCloudEvents(cfg CloudEventsConfig) (*CloudEvents, error) {
	if err := checkURL(cfg.URL); err != nil {
		return nil, err
	}
	switch cfg.Mode {
	case "", Binary, Structured:
	default:
		return nil, fmt.Errorf("%w: CloudEvents mode %q (want Binary or Structured)", ErrHTTPConfig, cfg.Mode)
	}
	c, err := newHTTPClient(cfg.HTTP)
	if err != nil {
		return nil, err
	}
	return &CloudEvents{url: cfg.URL, structured: cfg.Mode == Structured, http: c}, nil
}

// Send posts ev as a CloudEvent: id Event.ID, type "io.cardplane." + Event.Type, source, subject, time, and
// the data as application/json.
func (c *CloudEvents) Send(ctx context.Context, ev Event) error {
	e, err := cloudEvent(ev)
	if err != nil {
		return err
	}
	req, cancel, err := c.http.newRequest(ctx, c.url, nil)
	if err != nil {
		return err
	}
	defer cancel()
	wctx := binding.WithForceBinary(ctx)
	if c.structured {
		wctx = binding.WithForceStructured(ctx)
	}
	if err := cehttp.WriteRequest(wctx, binding.ToMessage(&e), req); err != nil {
		return permanent(fmt.Errorf("%w: %w", ErrInvalidEvent, err))
	}
	req.Header.Set("User-Agent", "cardplane")
	return c.http.do(req)
}

// cloudEvent is ev as a CloudEvents 1.0 event.
func cloudEvent(ev Event) (event.Event, error) {
	if err := ev.validate(); err != nil {
		return event.Event{}, err
	}
	if !json.Valid(ev.Data) {
		return event.Event{}, permanent(fmt.Errorf("%w: data is not JSON", ErrInvalidEvent))
	}
	e := event.New(event.CloudEventsVersionV1)
	e.SetID(ev.ID)
	e.SetType(ev.CloudEventType())
	e.SetSource(ev.Source)
	if ev.Subject != "" {
		e.SetSubject(ev.Subject)
	}
	if !ev.Time.IsZero() {
		e.SetTime(ev.Time)
	}
	// The data is JSON already: set it encoded, not through SetData, which would base64 a []byte.
	e.SetDataContentType(event.ApplicationJSON)
	e.DataEncoded = ev.Data
	if err := e.Validate(); err != nil {
		return event.Event{}, permanent(fmt.Errorf("%w: %w", ErrInvalidEvent, err))
	}
	return e, nil
}

// Close closes idle connections.
func (c *CloudEvents) Close() error {
	c.http.close()
	return nil
}
