package sinkconfig

import (
	"context"
	"crypto/x509"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/sink"
	"github.com/cardplane/cardplane/internal/testenv"
)

// secretValue is in every Secret the error tests read: no error message may show it.
const secretValue = "s3cr3t-value-0123456789"

func kafkaSpec(mutate func(*cardsv1alpha1.KafkaSink)) *cardsv1alpha1.SinkSpec {
	k := &cardsv1alpha1.KafkaSink{Brokers: []string{"kafka.example.com:9093"}, Topic: "cards"}
	if mutate != nil {
		mutate(k)
	}
	return &cardsv1alpha1.SinkSpec{Kafka: k}
}

func natsSpec(creds string) *cardsv1alpha1.SinkSpec {
	return &cardsv1alpha1.SinkSpec{NATS: &cardsv1alpha1.NATSSink{URLs: []string{"nats://nats.example.com:4222"}, SubjectPrefix: "cardplane",
		CredentialsSecretRef: &cardsv1alpha1.LocalObjectReference{Name: creds}}}
}

func webhookSpec(mutate func(*cardsv1alpha1.WebhookSink)) *cardsv1alpha1.SinkSpec {
	w := &cardsv1alpha1.WebhookSink{URL: "https://hooks.example.com/", SecretRef: cardsv1alpha1.LocalObjectReference{Name: "signing"}}
	if mutate != nil {
		mutate(w)
	}
	return &cardsv1alpha1.SinkSpec{Webhook: w}
}

func withSASL(mechanism string) func(*cardsv1alpha1.KafkaSink) {
	return func(k *cardsv1alpha1.KafkaSink) {
		k.SASL = &cardsv1alpha1.KafkaSASL{Mechanism: cardsv1alpha1.KafkaSASLMechanism(mechanism),
			SecretRef: cardsv1alpha1.LocalObjectReference{Name: "kafka-auth"}}
	}
}

func withKafkaTLS(t *cardsv1alpha1.SinkTLS) func(*cardsv1alpha1.KafkaSink) {
	return func(k *cardsv1alpha1.KafkaSink) { k.TLS = t }
}

func withHeader(name, secretName, key string) func(*cardsv1alpha1.WebhookSink) {
	return func(w *cardsv1alpha1.WebhookSink) {
		w.HTTP = &cardsv1alpha1.HTTPSinkOptions{Headers: []cardsv1alpha1.SecretHeader{
			{Name: name, ValueFrom: cardsv1alpha1.SecretKeyReference{Name: secretName, Key: key}}}}
	}
}

// Every way a sink's configuration cannot work is a ConfigError whose reason and message say which Secret,
// key or field to fix, and none shows a Secret's value.
func TestBuildConfigErrors(t *testing.T) {
	ca := testenv.NewCA(t)
	cert, _ := ca.Issue(t, 2, "cardplane", x509.ExtKeyUsageClientAuth)
	_, otherKey := ca.Issue(t, 3, "other", x509.ExtKeyUsageClientAuth)
	signing := secret("signing", map[string]string{cardsv1alpha1.SecretKeyDestinationSecret: secretValue})
	unlabelled := secret("kafka-auth", map[string]string{"username": "u", "password": secretValue})
	unlabelled.Labels = nil
	otherNamespace := secret("kafka-auth", map[string]string{"username": "u", "password": secretValue})
	otherNamespace.Namespace = "team-b"
	caRef := &cardsv1alpha1.SinkTLS{CASecretRef: &cardsv1alpha1.SecretKeyReference{Name: "ca", Key: "ca.crt"}}
	clientRef := &cardsv1alpha1.SinkTLS{ClientCertificateSecretRef: &cardsv1alpha1.LocalObjectReference{Name: "client"}}
	seed := func() string {
		kp, _ := nkeys.CreateUser()
		s, _ := kp.Seed()
		return string(s)
	}()
	cases := []struct {
		name    string
		spec    *cardsv1alpha1.SinkSpec
		objs    []client.Object
		reason  string
		message string // the whole message, or with a leading "~" a part of it
	}{
		{"no spec", nil, nil, cardsv1alpha1.ReasonInvalidConfig, "set exactly one of webhook, cloudEvents, kafka, nats (0 set)"},
		{"none of the four sinks", &cardsv1alpha1.SinkSpec{}, nil, cardsv1alpha1.ReasonInvalidConfig, "set exactly one of webhook, cloudEvents, kafka, nats (0 set)"},
		{"two sinks", &cardsv1alpha1.SinkSpec{Kafka: kafkaSpec(nil).Kafka, NATS: natsSpec("n").NATS}, nil,
			cardsv1alpha1.ReasonInvalidConfig, "set exactly one of webhook, cloudEvents, kafka, nats (2 set)"},
		{"missing Secret", kafkaSpec(withSASL("SCRAM-SHA-512")), nil,
			cardsv1alpha1.ReasonSecretNotFound, "~Secret team-a/kafka-auth not found"},
		{"Secret of another namespace", kafkaSpec(withSASL("SCRAM-SHA-512")), []client.Object{otherNamespace},
			cardsv1alpha1.ReasonSecretNotFound, "~Secret team-a/kafka-auth not found"},
		{"unlabelled Secret", kafkaSpec(withSASL("SCRAM-SHA-512")), []client.Object{unlabelled},
			cardsv1alpha1.ReasonSecretNotLabelled, "~Secret team-a/kafka-auth is not labelled cards.cardplane.io/credentials=true"},
		{"missing key", kafkaSpec(withSASL("SCRAM-SHA-512")), []client.Object{secret("kafka-auth", map[string]string{"username": secretValue})},
			cardsv1alpha1.ReasonSecretKeyMissing, `Secret team-a/kafka-auth: no key "password"`},
		{"empty key", kafkaSpec(withSASL("SCRAM-SHA-512")), []client.Object{secret("kafka-auth", map[string]string{"username": "", "password": secretValue})},
			cardsv1alpha1.ReasonSecretKeyMissing, `Secret team-a/kafka-auth: key "username" is empty`},
		{"SASL PLAIN in the clear", kafkaSpec(withSASL("PLAIN")), []client.Object{secret("kafka-auth", map[string]string{"username": "u", "password": secretValue})},
			cardsv1alpha1.ReasonInvalidConfig, "~SASL PLAIN only over TLS"},
		{"bad CA PEM", kafkaSpec(withKafkaTLS(caRef)), []client.Object{secret("ca", map[string]string{"ca.crt": secretValue})},
			ReasonInvalidTLS, "caSecretRef team-a/ca key ca.crt: no PEM certificate"},
		{"client key of another certificate", kafkaSpec(withKafkaTLS(clientRef)),
			[]client.Object{secret("client", map[string]string{"tls.crt": string(cert), "tls.key": string(otherKey)})},
			ReasonInvalidTLS, "~clientCertificateSecretRef team-a/client: tls: private key does not match public key"},
		{"client certificate without tls.key", kafkaSpec(withKafkaTLS(clientRef)), []client.Object{secret("client", map[string]string{"tls.crt": string(cert)})},
			cardsv1alpha1.ReasonSecretKeyMissing, `Secret team-a/client: no key "tls.key"`},
		{"webhook secret missing", webhookSpec(nil), []client.Object{secret("signing", map[string]string{"other": secretValue})},
			cardsv1alpha1.ReasonSecretKeyMissing, `Secret team-a/signing: no key "webhookSecret"`},
		{"webhook secret not base64", webhookSpec(nil), []client.Object{secret("signing", map[string]string{"webhookSecret": "whsec_" + secretValue + "!"})},
			cardsv1alpha1.ReasonSecretKeyMissing, `~Secret team-a/signing key "webhookSecret": whsec_ secret is not base64`},
		{"header the sink sets itself", webhookSpec(withHeader("webhook-id", "api", "k")), []client.Object{signing, secret("api", map[string]string{"k": secretValue})},
			cardsv1alpha1.ReasonInvalidConfig, `~header "Webhook-Id" is the sink's own`},
		{"header value with a control character", webhookSpec(withHeader("X-Api-Key", "api", "k")),
			[]client.Object{signing, secret("api", map[string]string{"k": secretValue + "\x00"})},
			cardsv1alpha1.ReasonInvalidConfig, `~header "X-Api-Key" has an invalid value`},
		{"two NATS credential forms", natsSpec("n"), []client.Object{secret("n", map[string]string{"token": secretValue, "nkey": seed})},
			cardsv1alpha1.ReasonInvalidConfig, "Secret team-a/n holds more than one form of NATS credentials (token, nkey): keep one"},
		{"no NATS credentials", natsSpec("n"), []client.Object{secret("n", map[string]string{"user": secretValue})},
			cardsv1alpha1.ReasonSecretKeyMissing, "~Secret team-a/n: no NATS credentials"},
		{"NATS username without password", natsSpec("n"), []client.Object{secret("n", map[string]string{"username": secretValue})},
			cardsv1alpha1.ReasonSecretKeyMissing, `Secret team-a/n: no key "password"`},
		{"NATS seed that is not one", natsSpec("n"), []client.Object{secret("n", map[string]string{"nkey": secretValue})},
			cardsv1alpha1.ReasonInvalidConfig, "~NKey seed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Build(context.Background(), newReader(tc.objs...), ns, tc.spec, Options{Dial: refuseAll})
			if err == nil {
				_ = s.Close()
				t.Fatal("built")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("%T %v, want a *ConfigError", err, err)
			}
			if ce.Reason != tc.reason {
				t.Errorf("reason %s, want %s (%v)", ce.Reason, tc.reason, err)
			}
			if part, ok := strings.CutPrefix(tc.message, "~"); ok && !strings.Contains(err.Error(), part) || !ok && err.Error() != tc.message {
				t.Errorf("message %q, want %q", err.Error(), tc.message)
			}
			if strings.Contains(err.Error(), secretValue) {
				t.Errorf("message %q shows the Secret's value", err.Error())
			}
		})
	}
}

// A failed read that is not "not found" is not a configuration error: the caller retries it.
func TestBuildReadErrorIsNotConfigError(t *testing.T) {
	ctx := context.Background()
	_, err := Build(ctx, failingReader{}, ns, kafkaSpec(withSASL("SCRAM-SHA-256")), Options{})
	var ce *ConfigError
	if err == nil || errors.As(err, &ce) {
		t.Fatalf("%v, want a plain error", err)
	}
	if _, err := Fingerprint(ctx, failingReader{}, ns, kafkaSpec(withSASL("SCRAM-SHA-256"))); err == nil {
		t.Fatal("Fingerprint ignored a failed read")
	}
}

type failingReader struct{ client.Reader }

func (failingReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return errors.New("connection refused")
}

// Kafka: the client ID, TLS only when tls is set (an empty tls is the caller's roots), SASL from the Secret
// with the trailing newline of an echo-made Secret dropped.
func TestKafkaConfig(t *testing.T) {
	roots := x509.NewCertPool()
	o := Options{Dial: refuseAll, RootCAs: roots}
	auth := secret("kafka-auth", map[string]string{"username": "producer\n", "password": "pass word \n"})

	plain, err := builderFor(o).kafkaConfig(kafkaSpec(nil).Kafka)
	if err != nil {
		t.Fatal(err)
	}
	if plain.ClientID != "cardplane" || plain.TLS != nil || plain.SASL != nil || plain.Topic != "cards" {
		t.Errorf("plain: %+v", plain)
	}
	cfg, err := builderFor(o, auth).kafkaConfig(kafkaSpec(func(k *cardsv1alpha1.KafkaSink) {
		withSASL("SCRAM-SHA-512")(k)
		k.TLS = &cardsv1alpha1.SinkTLS{}
	}).Kafka)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLS == nil || cfg.TLS.RootCAs != roots || cfg.TLS.CA != nil {
		t.Errorf("tls: {}: %+v, want TLS with the caller's roots", cfg.TLS)
	}
	if want := (sink.KafkaSASL{Mechanism: "SCRAM-SHA-512", Username: "producer", Password: "pass word "}); cfg.SASL == nil || *cfg.SASL != want {
		t.Errorf("SASL %+v, want %+v", cfg.SASL, want)
	}
	s, err := Build(context.Background(), newReader(auth), ns, kafkaSpec(withSASL("SCRAM-SHA-256")), o)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
}

// NATS: each credential form of the Secret fills its own field, and a tls:// URL gets the caller's roots.
func TestNATSConfig(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	creds := "-----BEGIN NATS USER JWT-----\neyJ0eXAi\n------END NATS USER JWT------\n"
	cases := []struct {
		name string
		data map[string]string
		want sink.NATSConfig
	}{
		{"token", map[string]string{"token": "t0ken\n"}, sink.NATSConfig{Token: "t0ken"}},
		{"username and password", map[string]string{"username": "svc", "password": "pw\n"}, sink.NATSConfig{User: "svc", Password: "pw"}},
		{"nkey", map[string]string{"nkey": string(seed) + "\n"}, sink.NATSConfig{NKeySeed: seed}},
		{"creds", map[string]string{"creds": creds}, sink.NATSConfig{Credentials: []byte(creds)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := builderFor(Options{}, secret("n", tc.data)).natsConfig(natsSpec("n").NATS)
			if err != nil {
				t.Fatal(err)
			}
			got := sink.NATSConfig{User: cfg.User, Password: cfg.Password, Token: cfg.Token, NKeySeed: cfg.NKeySeed, Credentials: cfg.Credentials}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("credentials %+v, want %+v", got, tc.want)
			}
		})
	}

	roots := x509.NewCertPool()
	spec := &cardsv1alpha1.NATSSink{URLs: []string{"nats://a:4222", "TLS://b:4222"}, SubjectPrefix: "cardplane", Stream: "CARDS"}
	cfg, err := builderFor(Options{RootCAs: roots}).natsConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLS == nil || cfg.TLS.RootCAs != roots || cfg.Stream != "CARDS" || len(cfg.URLs) != 2 {
		t.Errorf("tls:// URL: %+v", cfg)
	}
	spec.URLs = []string{"nats://a:4222"}
	if cfg, _ := builderFor(Options{}).natsConfig(spec); cfg.TLS != nil {
		t.Errorf("nats:// URL without tls: TLS %+v", cfg.TLS)
	}

	s, err := Build(context.Background(), newReader(secret("n", map[string]string{"nkey": string(seed)})), ns, natsSpec("n"), Options{Dial: refuseAll})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
}

// The fingerprint follows the spec and the Secrets it names, and nothing else.
func TestFingerprint(t *testing.T) {
	ctx := context.Background()
	auth := secret("kafka-auth", map[string]string{"username": "u", "password": "p1"})
	other := secret("unrelated", map[string]string{"k": "v"})
	r := newReader(auth, other)
	spec := kafkaSpec(withSASL("SCRAM-SHA-512"))
	fp := func(spec *cardsv1alpha1.SinkSpec) string {
		t.Helper()
		s, err := Fingerprint(ctx, r, ns, spec)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	update := func(s *corev1.Secret, change func(*corev1.Secret)) {
		t.Helper()
		change(s)
		if err := r.Update(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	first := fp(spec)
	if len(first) != 64 || fp(spec) != first {
		t.Fatalf("fingerprint %q is not a stable hex sha256", first)
	}
	update(other, func(s *corev1.Secret) { s.Data["k"] = []byte("changed") })
	if fp(spec) != first {
		t.Error("an unrelated Secret changed the fingerprint")
	}
	update(auth, func(s *corev1.Secret) { s.Data["password"] = []byte("p2") })
	rotated := fp(spec)
	if rotated == first {
		t.Error("a rotated password left the fingerprint as it was")
	}
	if fp(kafkaSpec(withSASL("SCRAM-SHA-256"))) == rotated {
		t.Error("a changed spec left the fingerprint as it was")
	}
	update(auth, func(s *corev1.Secret) { s.Labels = nil })
	unlabelled := fp(spec)
	if unlabelled == rotated {
		t.Error("unlabelling the Secret left the fingerprint as it was")
	}
	if err := r.Delete(ctx, auth); err != nil {
		t.Fatal(err)
	}
	if gone := fp(spec); gone != unlabelled {
		t.Error("a missing Secret and an unlabelled one differ: both are absent to cardplane")
	}
	if err := r.Create(ctx, secret("kafka-auth", nil)); err != nil {
		t.Fatal(err)
	}
	if fp(spec) == unlabelled {
		t.Error("a Secret appearing left the fingerprint as it was")
	}
}

func TestSecretNames(t *testing.T) {
	ref := func(name string) cardsv1alpha1.SecretKeyReference {
		return cardsv1alpha1.SecretKeyReference{Name: name, Key: "k"}
	}
	tlsOf := func(ca, client string) *cardsv1alpha1.SinkTLS {
		r := ref(ca)
		return &cardsv1alpha1.SinkTLS{CASecretRef: &r, ClientCertificateSecretRef: &cardsv1alpha1.LocalObjectReference{Name: client}}
	}
	bearer := ref("token")
	web := &cardsv1alpha1.SinkSpec{Webhook: &cardsv1alpha1.WebhookSink{SecretRef: cardsv1alpha1.LocalObjectReference{Name: "signing"},
		HTTP: &cardsv1alpha1.HTTPSinkOptions{Headers: []cardsv1alpha1.SecretHeader{{Name: "A", ValueFrom: ref("api")}, {Name: "B", ValueFrom: ref("api")}},
			BearerTokenSecretRef: &bearer, TLS: tlsOf("ca", "client")}}}
	kafka := kafkaSpec(withSASL("PLAIN"))
	kafka.Kafka.TLS = tlsOf("ca", "ca")
	nats := natsSpec("creds")
	nats.NATS.TLS = &cardsv1alpha1.SinkTLS{ClientCertificateSecretRef: &cardsv1alpha1.LocalObjectReference{Name: "client"}}
	for _, tc := range []struct {
		name string
		spec *cardsv1alpha1.SinkSpec
		want []string
	}{
		{"nil", nil, nil},
		{"webhook", web, []string{"api", "ca", "client", "signing", "token"}},
		{"cloudEvents without Secrets", &cardsv1alpha1.SinkSpec{CloudEvents: &cardsv1alpha1.CloudEventsSink{URL: "https://x/"}}, nil},
		{"kafka", kafka, []string{"ca", "kafka-auth"}},
		{"nats", nats, []string{"client", "creds"}},
	} {
		if got := SecretNames(tc.spec); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestKind(t *testing.T) {
	for want, spec := range map[string]*cardsv1alpha1.SinkSpec{
		"":            {},
		"webhook":     webhookSpec(nil),
		"cloudEvents": {CloudEvents: &cardsv1alpha1.CloudEventsSink{}},
		"kafka":       kafkaSpec(nil),
		"nats":        natsSpec("n"),
	} {
		if got := Kind(spec); got != want {
			t.Errorf("Kind = %q, want %q", got, want)
		}
	}
	if Kind(nil) != "" {
		t.Error("Kind(nil) is not empty")
	}
}
