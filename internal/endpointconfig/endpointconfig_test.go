package endpointconfig

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/scheme"
)

// Branch tests of Resolve with a fake reader; the reconciler's tests run the same code against a real API server.
func TestResolve(t *testing.T) {
	secret := func(name string, data map[string]string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}}, Data: map[string][]byte{}}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		return s
	}
	creds := &cardsv1alpha1.LocalObjectReference{Name: "creds"}
	cases := []struct {
		name    string
		spec    cardsv1alpha1.WebhookEndpointSpec
		secrets []*corev1.Secret
		reason  string // "" means Ready
		check   func(*testing.T, *Resolved)
	}{
		{"upay ready", cardsv1alpha1.WebhookEndpointSpec{Provider: "upay", CredentialsRef: creds},
			[]*corev1.Secret{secret("creds", map[string]string{"signingKey": "k"})}, "", func(t *testing.T, r *Resolved) {
				if string(r.SigningKey) != "k" || r.TargetNamespace != "ns" || r.TimestampTolerance != DefaultTimestampTolerance {
					t.Errorf("resolved %+v", r)
				}
			}},
		{"suspended", cardsv1alpha1.WebhookEndpointSpec{Provider: "upay", Suspend: true}, nil, cardsv1alpha1.ReasonSuspended, nil},
		{"secret missing", cardsv1alpha1.WebhookEndpointSpec{Provider: "upay", CredentialsRef: creds}, nil, cardsv1alpha1.ReasonSecretNotFound, nil},
		{"key missing", cardsv1alpha1.WebhookEndpointSpec{Provider: "tevau", CredentialsRef: creds},
			[]*corev1.Secret{secret("creds", map[string]string{"other": "x"})}, cardsv1alpha1.ReasonSecretKeyMissing, nil},
		{"tevau time zone", cardsv1alpha1.WebhookEndpointSpec{Provider: "tevau", CredentialsRef: creds,
			Tevau: &cardsv1alpha1.TevauOptions{TimeZone: "Asia/Singapore"}},
			[]*corev1.Secret{secret("creds", map[string]string{"signingKey": "k"})}, "", nil},
		{"unsigned provider needs CIDRs or token", cardsv1alpha1.WebhookEndpointSpec{Provider: "prepaidify"}, nil, cardsv1alpha1.ReasonInvalidConfig, nil},
		{"bad CIDR", cardsv1alpha1.WebhookEndpointSpec{Provider: "alchemypay",
			Verification: &cardsv1alpha1.Verification{SourceCIDRs: []string{"10.0.0.0/33"}}}, nil, cardsv1alpha1.ReasonInvalidConfig, nil},
		{"CIDRs", cardsv1alpha1.WebhookEndpointSpec{Provider: "alchemypay",
			Verification: &cardsv1alpha1.Verification{SourceCIDRs: []string{"203.0.113.7/24"}}}, nil, "", func(t *testing.T, r *Resolved) {
			if len(r.SourcePrefixes) != 1 || r.SourcePrefixes[0].String() != "203.0.113.0/24" {
				t.Errorf("prefixes %v", r.SourcePrefixes)
			}
		}},
		{"short URL token", cardsv1alpha1.WebhookEndpointSpec{Provider: "prepaidify", CredentialsRef: creds,
			Verification: &cardsv1alpha1.Verification{RequireURLToken: true}},
			[]*corev1.Secret{secret("creds", map[string]string{"urlToken": "short"})}, cardsv1alpha1.ReasonInvalidConfig, nil},
		{"URL token", cardsv1alpha1.WebhookEndpointSpec{Provider: "prepaidify", CredentialsRef: creds,
			Verification: &cardsv1alpha1.Verification{RequireURLToken: true}},
			[]*corev1.Secret{secret("creds", map[string]string{"urlToken": " 0123456789abcdef-xyz\n"})}, "", func(t *testing.T, r *Resolved) {
				if r.URLToken != "0123456789abcdef-xyz" {
					t.Errorf("token %q", r.URLToken)
				}
			}},
		{"bananatech raw key of wrong length", cardsv1alpha1.WebhookEndpointSpec{Provider: "bananatech", CredentialsRef: creds},
			[]*corev1.Secret{secret("creds", map[string]string{"signingKey": "not-16-bytes"})}, cardsv1alpha1.ReasonInvalidConfig, nil},
		{"bananatech SHA256 key", cardsv1alpha1.WebhookEndpointSpec{Provider: "bananatech", CredentialsRef: creds,
			BananaTech: &cardsv1alpha1.BananaTechOptions{AESKey: "SHA256"}},
			[]*corev1.Secret{secret("creds", map[string]string{"signingKey": "any length"})}, "", func(t *testing.T, r *Resolved) {
				if len(r.EncryptionKey) != 32 {
					t.Errorf("AES key of %d bytes", len(r.EncryptionKey))
				}
			}},
		{"generic whsec key", cardsv1alpha1.WebhookEndpointSpec{Provider: "generic", CredentialsRef: creds,
			Generic: &cardsv1alpha1.GenericMapping{EventType: "body.type", Events: []cardsv1alpha1.GenericEventRule{{EventTypes: []string{"x"}, Kind: "Ignore"}}}},
			[]*corev1.Secret{secret("creds", map[string]string{"signingKey": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})}, "", func(t *testing.T, r *Resolved) {
				if len(r.SigningKey) != 24 {
					t.Errorf("decoded key of %d bytes", len(r.SigningKey))
				}
			}},
		// A destination's Secret is the projection's business (DestinationsReady): callbacks are still served.
		{"destination secret missing", cardsv1alpha1.WebhookEndpointSpec{Provider: "upay", CredentialsRef: creds,
			Destinations: []cardsv1alpha1.Destination{{Name: "ledger", URL: "https://x", SecretRef: cardsv1alpha1.LocalObjectReference{Name: "dest"}}}},
			[]*corev1.Secret{secret("creds", map[string]string{"signingKey": "k"})}, "", nil},
		{"secret not labelled for cardplane", cardsv1alpha1.WebhookEndpointSpec{Provider: "upay", CredentialsRef: creds},
			[]*corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "creds"}, Data: map[string][]byte{"signingKey": []byte("k")}}},
			cardsv1alpha1.ReasonSecretNotLabelled, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(scheme.New())
			for _, s := range c.secrets {
				b = b.WithObjects(s)
			}
			ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ep"}, Spec: c.spec}
			// What the reconciler decides readiness with.
			r, err := Resolve(context.Background(), b.Build(), ep)
			var cfgErr *Error
			switch {
			case c.reason == "" && err != nil:
				t.Fatalf("want Ready, got %v", err)
			case c.reason != "" && (!errors.As(err, &cfgErr) || cfgErr.Reason != c.reason):
				t.Fatalf("want reason %s, got %v", c.reason, err)
			case c.reason != "" && strings.TrimSpace(cfgErr.Message) == "":
				t.Fatal("no message")
			}
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

// An endpoint writes into another namespace only with that namespace's consent.
func TestTargetNamespaceConsent(t *testing.T) {
	namespace := func(name, accepts string, deleting bool) *corev1.Namespace {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if accepts != "" {
			ns.Annotations = map[string]string{cardsv1alpha1.AnnotationAcceptEndpointsFrom: accepts}
		}
		if deleting {
			ns.DeletionTimestamp = &metav1.Time{Time: time.Now()}
			ns.Finalizers = []string{"kubernetes"}
		}
		return ns
	}
	c := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(
		namespace("team-a", "", false),
		namespace("silent", "", false),
		namespace("others", "team-b, team-c", false),
		namespace("lists-a", "team-c, team-a", false),
		namespace("everyone", "*", false),
		namespace("closing", "*", true),
	).Build()
	for target, want := range map[string]string{
		"":          "", // its own namespace
		"team-a":    "",
		"lists-a":   "",
		"everyone":  "",
		"silent":    cardsv1alpha1.ReasonTargetNamespaceNotPermitted,
		"others":    cardsv1alpha1.ReasonTargetNamespaceNotPermitted,
		"closing":   cardsv1alpha1.ReasonTargetNamespaceNotPermitted,
		"not-there": cardsv1alpha1.ReasonTargetNamespaceNotPermitted,
	} {
		ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "ep"},
			Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderAlchemyPay, TargetNamespace: target,
				Verification: &cardsv1alpha1.Verification{SourceCIDRs: []string{"192.0.2.0/24"}}}}
		_, err := Resolve(context.Background(), c, ep)
		var cfgErr *Error
		switch {
		case want == "" && err != nil:
			t.Errorf("target %q: want Ready, got %v", target, err)
		case want != "" && (!errors.As(err, &cfgErr) || cfgErr.Reason != want):
			t.Errorf("target %q: want %s, got %v", target, want, err)
		case want != "":
			t.Logf("target %q: %s", target, cfgErr.Message)
		}
	}
}
