package sinkconfig

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/sink"
)

// clientID names cardplane's Kafka producers to the brokers (their quotas and logs).
const clientID = "cardplane"

// Keys of a NATS credentials Secret; username and password are corev1's basic-auth keys.
const (
	natsToken = "token"
	natsNKey  = "nkey"
	natsCreds = "creds"
)

// builder builds one sink: the Secrets of its namespace and the caller's options.
type builder struct {
	*secrets
	o Options
}

// made is a transport's constructor result as Build returns it: no typed nil in the interface, and the
// constructor's refusal (a header the sink sets itself, SASL PLAIN without TLS) as a ConfigError.
func made[S sink.Sink](s S, err error) (sink.Sink, error) {
	if err != nil {
		reason := cardsv1alpha1.ReasonInvalidConfig
		if errors.Is(err, sink.ErrTLSConfig) {
			reason = ReasonInvalidTLS
		}
		return nil, &ConfigError{Reason: reason, Err: err}
	}
	return s, nil
}

func (b *builder) webhook(w *cardsv1alpha1.WebhookSink) (sink.Sink, error) {
	cfg, err := b.webhookConfig(w)
	if err != nil {
		return nil, err
	}
	return made(sink.NewWebhook(cfg))
}

func (b *builder) webhookConfig(w *cardsv1alpha1.WebhookSink) (sink.WebhookConfig, error) {
	name, key := w.SecretRef.Name, cardsv1alpha1.SecretKeyDestinationSecret
	raw, err := b.value(name, key)
	if err != nil {
		return sink.WebhookConfig{}, err
	}
	// The same decoding as a WebhookEndpoint destination's secret, so one Secret can serve both.
	secret, err := endpointconfig.StandardWebhooksKey(raw)
	if err != nil {
		return sink.WebhookConfig{}, configErr(cardsv1alpha1.ReasonSecretKeyMissing, "Secret %s/%s key %q: %w", b.ns, name, key, err)
	}
	h, err := b.http(w.HTTP)
	if err != nil {
		return sink.WebhookConfig{}, err
	}
	return sink.WebhookConfig{URL: w.URL, Secret: secret, HTTP: h}, nil
}

func (b *builder) cloudEvents(c *cardsv1alpha1.CloudEventsSink) (sink.Sink, error) {
	cfg, err := b.cloudEventsConfig(c)
	if err != nil {
		return nil, err
	}
	return made(sink.NewCloudEvents(cfg))
}

func (b *builder) cloudEventsConfig(c *cardsv1alpha1.CloudEventsSink) (sink.CloudEventsConfig, error) {
	h, err := b.http(c.HTTP)
	if err != nil {
		return sink.CloudEventsConfig{}, err
	}
	mode := sink.Binary
	if c.Mode == "Structured" {
		mode = sink.Structured
	}
	return sink.CloudEventsConfig{URL: c.URL, Mode: mode, HTTP: h}, nil
}

// http is the client configuration of both HTTP transports.
func (b *builder) http(h *cardsv1alpha1.HTTPSinkOptions) (sink.HTTP, error) {
	out := sink.HTTP{Timeout: b.o.Timeout, DialControl: b.o.Dial}
	if h == nil {
		out.TLS = sink.TLS{RootCAs: b.o.RootCAs}
		return out, nil
	}
	var err error
	if out.TLS, err = b.tls(h.TLS, b.o.RootCAs); err != nil {
		return sink.HTTP{}, err
	}
	out.ProxyURL = h.ProxyURL
	if len(h.Headers) > 0 {
		out.Headers = http.Header{}
	}
	for _, hd := range h.Headers {
		v, err := b.text(hd.ValueFrom.Name, hd.ValueFrom.Key)
		if err != nil {
			return sink.HTTP{}, err
		}
		out.Headers.Add(hd.Name, v)
	}
	if ref := h.BearerTokenSecretRef; ref != nil {
		if out.BearerToken, err = b.text(ref.Name, ref.Key); err != nil {
			return sink.HTTP{}, err
		}
	}
	return out, nil
}

func (b *builder) kafka(k *cardsv1alpha1.KafkaSink) (sink.Sink, error) {
	cfg, err := b.kafkaConfig(k)
	if err != nil {
		return nil, err
	}
	return made(sink.NewKafka(cfg))
}

func (b *builder) kafkaConfig(k *cardsv1alpha1.KafkaSink) (sink.KafkaConfig, error) {
	cfg := sink.KafkaConfig{Brokers: slices.Clone(k.Brokers), Topic: k.Topic, ClientID: clientID,
		Timeout: b.o.Timeout, DialControl: b.o.Dial}
	// Kafka listeners are plaintext unless asked otherwise: TLS only when tls is set, even empty.
	if k.TLS != nil {
		t, err := b.tls(k.TLS, b.o.RootCAs)
		if err != nil {
			return sink.KafkaConfig{}, err
		}
		cfg.TLS = &t
	}
	if s := k.SASL; s != nil {
		user, err := b.text(s.SecretRef.Name, corev1.BasicAuthUsernameKey)
		if err != nil {
			return sink.KafkaConfig{}, err
		}
		pass, err := b.text(s.SecretRef.Name, corev1.BasicAuthPasswordKey)
		if err != nil {
			return sink.KafkaConfig{}, err
		}
		cfg.SASL = &sink.KafkaSASL{Mechanism: string(s.Mechanism), Username: user, Password: pass}
	}
	return cfg, nil
}

func (b *builder) nats(n *cardsv1alpha1.NATSSink) (sink.Sink, error) {
	cfg, err := b.natsConfig(n)
	if err != nil {
		return nil, err
	}
	return made(sink.NewNATS(cfg))
}

func (b *builder) natsConfig(n *cardsv1alpha1.NATSSink) (sink.NATSConfig, error) {
	cfg := sink.NATSConfig{URLs: slices.Clone(n.URLs), SubjectPrefix: n.SubjectPrefix, Stream: n.Stream,
		Timeout: b.o.Timeout, DialControl: b.o.Dial}
	// A tls:// URL makes nats.go use TLS on its own, with the system roots: pass the caller's roots instead.
	if n.TLS != nil || slices.ContainsFunc(n.URLs, isTLSURL) {
		t, err := b.tls(n.TLS, b.o.RootCAs)
		if err != nil {
			return sink.NATSConfig{}, err
		}
		cfg.TLS = &t
	}
	if ref := n.CredentialsSecretRef; ref != nil {
		if err := b.natsCredentials(ref.Name, &cfg); err != nil {
			return sink.NATSConfig{}, err
		}
	}
	return cfg, nil
}

func isTLSURL(u string) bool { return strings.HasPrefix(strings.ToLower(u), "tls://") }

// natsCredentials sets the one form of credentials the Secret holds: a token, a username and password, an
// NKey seed or a .creds file. Two forms are refused rather than one picked, since either could be stale.
func (b *builder) natsCredentials(name string, cfg *sink.NATSConfig) error {
	d, err := b.data(name)
	if err != nil {
		return err
	}
	has := func(k string) bool { return len(d[k]) > 0 }
	var forms []string
	if has(natsToken) {
		forms = append(forms, natsToken)
	}
	if has(corev1.BasicAuthUsernameKey) || has(corev1.BasicAuthPasswordKey) {
		forms = append(forms, "username and password")
	}
	if has(natsNKey) {
		forms = append(forms, natsNKey)
	}
	if has(natsCreds) {
		forms = append(forms, natsCreds)
	}
	switch len(forms) {
	case 0:
		return configErr(cardsv1alpha1.ReasonSecretKeyMissing, "Secret %s/%s: no NATS credentials (one of the keys token, username and password, nkey, creds)", b.ns, name)
	case 1:
	default:
		return configErr(cardsv1alpha1.ReasonInvalidConfig, "Secret %s/%s holds more than one form of NATS credentials (%s): keep one",
			b.ns, name, strings.Join(forms, ", "))
	}
	return b.natsForm(name, forms[0], d, cfg)
}

func (b *builder) natsForm(name, form string, d map[string][]byte, cfg *sink.NATSConfig) error {
	var err error
	switch form {
	case natsToken:
		cfg.Token = trimNewline(d[natsToken])
	case natsNKey:
		cfg.NKeySeed = []byte(trimNewline(d[natsNKey]))
	case natsCreds:
		// A .creds file is parsed as a whole, newlines and all.
		cfg.Credentials = d[natsCreds]
	default:
		if cfg.User, err = b.text(name, corev1.BasicAuthUsernameKey); err != nil {
			return err
		}
		cfg.Password, err = b.text(name, corev1.BasicAuthPasswordKey)
	}
	return err
}
