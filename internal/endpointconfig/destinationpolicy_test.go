package endpointconfig

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/scheme"
)

// Readiness refuses what would send one-time codes in the clear, the removed allowPrivateDestinations, and a
// bad allow-list, with a message that names the fix.
func TestResolveDestinationPolicy(t *testing.T) {
	reader := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "creds", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}}, Data: map[string][]byte{"signingKey": []byte("k")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}},
			Data: map[string][]byte{cardsv1alpha1.SecretKeyDestinationSecret: []byte("0123456789abcdef")}},
	).Build()
	otp := []cardsv1alpha1.DestinationEventType{cardsv1alpha1.EventCardUpdated, cardsv1alpha1.EventChallengeOTP}
	dest := func(name, url string, types []cardsv1alpha1.DestinationEventType) cardsv1alpha1.Destination {
		return cardsv1alpha1.Destination{Name: name, URL: url, EventTypes: types, SecretRef: cardsv1alpha1.LocalObjectReference{Name: "d"}}
	}
	cases := []struct {
		name string
		spec func(*cardsv1alpha1.WebhookEndpointSpec)
		want string // "" means Ready; otherwise an InvalidConfig message containing it
	}{
		{"one-time codes over http", func(s *cardsv1alpha1.WebhookEndpointSpec) {
			s.Destinations = []cardsv1alpha1.Destination{dest("ledger", "http://ledger.example.com/hooks", nil), dest("sms", "http://otp.example.com/hooks", otp)}
		}, "destination sms: challenge.otp carries one-time codes and needs an https:// url"},
		{"one-time codes over http to a private address", func(s *cardsv1alpha1.WebhookEndpointSpec) {
			s.Destinations = []cardsv1alpha1.Destination{dest("sms", "http://10.0.0.7:8080/hooks", otp)}
			s.DestinationPolicy = &cardsv1alpha1.DestinationPolicy{AllowedCIDRs: []string{"10.0.0.0/8"}}
		}, "destination sms: challenge.otp"},
		{"one-time codes over https", func(s *cardsv1alpha1.WebhookEndpointSpec) {
			s.Destinations = []cardsv1alpha1.Destination{dest("sms", "https://otp.example.com/hooks", otp)}
		}, ""},
		{"one-time codes over http to loopback (cardplane dev)", func(s *cardsv1alpha1.WebhookEndpointSpec) {
			s.Destinations = []cardsv1alpha1.Destination{dest("a", "http://127.0.0.1:18090/hooks", otp),
				dest("b", "http://[::1]:18090/hooks", otp), dest("c", "http://localhost:18090/hooks", otp)}
		}, ""},
		{"one-time codes over http to loopback through a proxy", func(s *cardsv1alpha1.WebhookEndpointSpec) {
			d := dest("sms", "http://127.0.0.1:18090/hooks", otp)
			d.HTTP = &cardsv1alpha1.HTTPSinkOptions{ProxyURL: "http://127.0.0.1:3128"}
			s.Destinations = []cardsv1alpha1.Destination{d}
		}, "destination sms: challenge.otp through a proxy needs an https:// url"},
		{"one-time codes over https through a proxy", func(s *cardsv1alpha1.WebhookEndpointSpec) {
			d := dest("sms", "https://otp.example.com/hooks", otp)
			d.HTTP = &cardsv1alpha1.HTTPSinkOptions{ProxyURL: "http://egress.example.com:3128"}
			s.Destinations = []cardsv1alpha1.Destination{d}
		}, ""},
		{"card updates over http", func(s *cardsv1alpha1.WebhookEndpointSpec) {
			s.Destinations = []cardsv1alpha1.Destination{dest("ledger", "http://ledger.example.com/hooks", nil)}
		}, ""},
		{"removed allowPrivateDestinations", func(s *cardsv1alpha1.WebhookEndpointSpec) {
			s.RemovedAllowPrivateDestinations = true
		}, "spec.allowPrivateDestinations was removed (it opened loopback and cloud metadata addresses too): list the private ranges your destinations need in spec.destinationPolicy.allowedCIDRs"},
		{"allow-list", func(s *cardsv1alpha1.WebhookEndpointSpec) {
			s.DestinationPolicy = &cardsv1alpha1.DestinationPolicy{AllowedCIDRs: []string{"10.96.0.0/12", "fd00::/8"}}
		}, ""},
		{"allow-list with a bad CIDR", func(s *cardsv1alpha1.WebhookEndpointSpec) {
			s.DestinationPolicy = &cardsv1alpha1.DestinationPolicy{AllowedCIDRs: []string{"10.0.0.300/8"}}
		}, `destinationPolicy.allowedCIDRs: "10.0.0.300/8" is not a CIDR`},
		{"allow-list with an IPv4-mapped CIDR", func(s *cardsv1alpha1.WebhookEndpointSpec) {
			s.DestinationPolicy = &cardsv1alpha1.DestinationPolicy{AllowedCIDRs: []string{"::ffff:10.0.0.0/104"}}
		}, "write IPv4 ranges as IPv4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ep"},
				Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay, CredentialsRef: &cardsv1alpha1.LocalObjectReference{Name: "creds"}}}
			c.spec(&ep.Spec)
			_, err := Resolve(context.Background(), reader, ep)
			var cfgErr *Error
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("want Ready, got %v", err)
			case c.want != "" && (!errors.As(err, &cfgErr) || cfgErr.Reason != cardsv1alpha1.ReasonInvalidConfig):
				t.Fatalf("want InvalidConfig, got %v", err)
			case c.want != "" && !strings.Contains(cfgErr.Message, c.want):
				t.Fatalf("message %q does not contain %q", cfgErr.Message, c.want)
			}
		})
	}
}

func TestConfidentialURL(t *testing.T) {
	for url, want := range map[string]bool{
		"https://otp.example.com/x":       true,
		"https://10.0.0.1/x":              true,
		"http://127.0.0.1:18090/x":        true,
		"http://127.1.2.3/x":              true,
		"http://[::1]:8080/x":             true,
		"http://localhost:8080/x":         true,
		"http://otp.example.com/x":        false,
		"http://localhost.example.com/x":  false,
		"http://127.0.0.1.nip.io/x":       false,
		"http://10.0.0.1/x":               false,
		"http://[::ffff:127.0.0.1]:8080/": true,
		"ftp://otp.example.com/x":         false,
		"://bad":                          false,
	} {
		if got := ConfidentialURL(url); got != want {
			t.Errorf("ConfidentialURL(%q) = %v, want %v", url, got, want)
		}
	}
}
