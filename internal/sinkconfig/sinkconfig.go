// Package sinkconfig turns a CardEventSink's sink (a SinkSpec), or a WebhookEndpoint destination (Destination),
// and the Secrets of its namespace that it names into a sink.Sink. It is the one place that knows which Secret
// key feeds which transport option, so the dispatcher that sends and the reconcilers that report readiness
// agree on what is usable.
//
// Secrets are read from the referrer's own namespace only, and only when labelled
// cards.cardplane.io/credentials=true, like every Secret cardplane reads: the manager's cache holds no other.
// A rotated Secret is picked up by building a new sink and swapping it in with sink.Rotating: Fingerprint
// says when that is due and SecretNames which sinks a changed Secret concerns.
package sinkconfig

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/sink"
)

// Options are the caller's policies, applied to every sink built.
type Options struct {
	// Dial is the address policy of every connection (nil: sink.PublicOnly()).
	Dial sink.DialControl
	// RootCAs are the default roots when no caSecretRef is set (nil: the system's).
	RootCAs *x509.CertPool
	// Timeout bounds one attempt (0: the sink's default).
	Timeout time.Duration
}

// ReasonInvalidTLS is the condition reason of a CA bundle or client certificate that does not parse. The
// other reasons a ConfigError carries are the API's: ReasonSecretNotFound, ReasonSecretNotLabelled,
// ReasonSecretKeyMissing and ReasonInvalidConfig.
const ReasonInvalidTLS = "InvalidTLS"

// ConfigError is a sink that cannot be built as configured: the spec or a Secret must change. Its message is
// meant for a status condition and never holds a Secret's value.
type ConfigError struct {
	// Reason is a CamelCase condition reason (SecretNotFound, SecretKeyMissing, InvalidTLS, InvalidConfig, ...).
	Reason string
	Err    error
}

func (e *ConfigError) Error() string { return e.Err.Error() }

func (e *ConfigError) Unwrap() error { return e.Err }

func configErr(reason, format string, args ...any) *ConfigError {
	return &ConfigError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Transport names, as Kind returns them.
const (
	KindWebhook     = "webhook"
	KindCloudEvents = "cloudEvents"
	KindKafka       = "kafka"
	KindNATS        = "nats"
)

// Kind names the transport: "webhook", "cloudEvents", "kafka", "nats" ("" if none is set). With more than one
// set (which the API refuses), the first in that order.
func Kind(spec *cardsv1alpha1.SinkSpec) string {
	kinds := setKinds(spec)
	if len(kinds) == 0 {
		return ""
	}
	return kinds[0]
}

func setKinds(spec *cardsv1alpha1.SinkSpec) []string {
	if spec == nil {
		return nil
	}
	var kinds []string
	for _, k := range []struct {
		set  bool
		name string
	}{{spec.Webhook != nil, KindWebhook}, {spec.CloudEvents != nil, KindCloudEvents},
		{spec.Kafka != nil, KindKafka}, {spec.NATS != nil, KindNATS}} {
		if k.set {
			kinds = append(kinds, k.name)
		}
	}
	return kinds
}

// Build reads the Secrets spec names (from namespace only) with r and builds the sink. It does not wait for the
// destination (a NATS sink starts connecting in the background). A configuration that cannot work is a
// *ConfigError; any other error (a failed read) is worth retrying.
func Build(ctx context.Context, r client.Reader, namespace string, spec *cardsv1alpha1.SinkSpec, o Options) (sink.Sink, error) {
	kinds := setKinds(spec)
	if len(kinds) != 1 {
		return nil, configErr(cardsv1alpha1.ReasonInvalidConfig, "set exactly one of webhook, cloudEvents, kafka, nats (%d set)", len(kinds))
	}
	if o.Dial == nil {
		o.Dial = sink.PublicOnly()
	}
	b := &builder{secrets: newSecrets(ctx, r, namespace), o: o}
	switch kinds[0] {
	case KindWebhook:
		return b.webhook(spec.Webhook)
	case KindCloudEvents:
		return b.cloudEvents(spec.CloudEvents)
	case KindKafka:
		return b.kafka(spec.Kafka)
	default:
		return b.nats(spec.NATS)
	}
}

// Destination is a WebhookEndpoint destination as the sink it is: a Standard Webhooks POST signed with its
// secretRef's webhookSecret, reached and authenticated to with its http options. Destinations and the
// CardEventSinks' webhook sinks are built, checked and rotated by the same code.
func Destination(d *cardsv1alpha1.Destination) *cardsv1alpha1.SinkSpec {
	return &cardsv1alpha1.SinkSpec{Webhook: &cardsv1alpha1.WebhookSink{URL: d.URL, SecretRef: d.SecretRef, HTTP: d.HTTP}}
}

// SecretNames lists the names of the Secrets spec refers to (deduplicated, sorted), so the caller can map a
// Secret change to the sinks that use it.
func SecretNames(spec *cardsv1alpha1.SinkSpec) []string {
	if spec == nil {
		return nil
	}
	var names []string
	if w := spec.Webhook; w != nil {
		names = append(names, w.SecretRef.Name)
		names = append(names, w.HTTP.SecretNames()...)
	}
	if c := spec.CloudEvents; c != nil {
		names = append(names, c.HTTP.SecretNames()...)
	}
	if k := spec.Kafka; k != nil {
		names = append(names, k.TLS.SecretNames()...)
		if k.SASL != nil {
			names = append(names, k.SASL.SecretRef.Name)
		}
	}
	if n := spec.NATS; n != nil {
		names = append(names, n.TLS.SecretNames()...)
		if n.CredentialsSecretRef != nil {
			names = append(names, n.CredentialsSecretRef.Name)
		}
	}
	names = slices.DeleteFunc(names, func(s string) bool { return s == "" })
	slices.Sort(names)
	return slices.Compact(names)
}

// fingerprinted is what Fingerprint digests: a Secret that is missing or not labelled for cardplane is null,
// so it differs from one that exists without data, and its appearance changes the digest.
type fingerprinted struct {
	Spec    *cardsv1alpha1.SinkSpec      `json:"spec"`
	Secrets map[string]map[string][]byte `json:"secrets"`
}

// Fingerprint is a digest (hex sha256) of spec and of the data of every Secret it names (missing Secrets and
// keys count as absent), so the caller rebuilds a sink only when its configuration or a Secret changed: the
// Secret rotation path. The caller's Options are not in it. An error is a failed read, not a missing Secret.
func Fingerprint(ctx context.Context, r client.Reader, namespace string, spec *cardsv1alpha1.SinkSpec) (string, error) {
	fp := fingerprinted{Spec: spec, Secrets: map[string]map[string][]byte{}}
	for _, name := range SecretNames(spec) {
		data, err := fetch(ctx, r, namespace, name)
		var ce *ConfigError
		switch {
		case errors.As(err, &ce):
			data = nil // missing or unlabelled: absent
		case err != nil:
			return "", err
		case data == nil:
			data = map[string][]byte{}
		}
		fp.Secrets[name] = data
	}
	// encoding/json sorts map keys: the same configuration always encodes the same.
	b, err := json.Marshal(fp)
	if err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
