package sink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// WebhookConfig configures a Standard Webhooks sink: a JSON POST signed with webhook-id, webhook-timestamp
// and webhook-signature, the projection's transport.
type WebhookConfig struct {
	// URL is the destination, http:// or https://.
	URL string
	// Secret is the signing key, decoded (the bytes after "whsec_", base64-decoded, or a raw secret).
	Secret []byte
	HTTP   HTTP
	// Now stamps webhook-timestamp (default time.Now).
	Now func() time.Time
}

// ErrNoSecret is a Standard Webhooks sink without a signing key.
var ErrNoSecret = errors.New("a Standard Webhooks sink needs a signing secret")

// Webhook is a Standard Webhooks sink.
type Webhook struct {
	url    string
	secret []byte
	http   *httpClient
}

// NewWebhook builds a Standard Webhooks sink. It connects to nothing until the first Send.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	if len(cfg.Secret) == 0 {
		return nil, ErrNoSecret
	}
	if err := checkURL(cfg.URL); err != nil {
		return nil, err
	}
	c, err := newHTTPClient(cfg.HTTP)
	if err != nil {
		return nil, err
	}
	if cfg.Now != nil {
		c.now = cfg.Now
	}
	return &Webhook{url: cfg.URL, secret: bytes.Clone(cfg.Secret), http: c}, nil
}

// webhookEnvelope is the body: the projection's Envelope, {"type": "card.updated", "timestamp": ..., "data": {...}}.
type webhookEnvelope struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// Send posts ev, signed. The signature's timestamp is the time of this attempt (receivers refuse old ones);
// the body's timestamp is the state's.
func (w *Webhook) Send(ctx context.Context, ev Event) error {
	if err := ev.validate(); err != nil {
		return err
	}
	ts := ev.Time
	if ts.IsZero() {
		ts = w.http.now()
	}
	body, err := json.Marshal(webhookEnvelope{Type: ev.Type, Timestamp: ts.UTC(), Data: ev.Data})
	if err != nil {
		return permanent(fmt.Errorf("%w: data is not JSON: %w", ErrInvalidEvent, err))
	}
	req, cancel, err := w.http.newRequest(ctx, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer cancel()
	SignStandardWebhooks(req.Header, ev.ID, w.http.now(), body, w.secret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cardplane")
	return w.http.do(req)
}

// Close closes idle connections.
func (w *Webhook) Close() error {
	w.http.close()
	return nil
}

// SignStandardWebhooks sets the Standard Webhooks headers of body on h: webhook-id, webhook-timestamp (Unix
// seconds) and webhook-signature "v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>".
func SignStandardWebhooks(h http.Header, id string, ts time.Time, body, secret []byte) {
	t := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(id + "." + t + "."))
	mac.Write(body)
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", t)
	h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
}
