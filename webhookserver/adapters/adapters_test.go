package adapters

import (
	"strings"
	"testing"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// TestValidateConfig: the reconciler refuses what only the adapters can check, naming the field.
func TestValidateConfig(t *testing.T) {
	ignore := []cardsv1alpha1.GenericEventRule{{EventTypes: []string{"x"}, Kind: "Ignore"}}
	cases := []struct {
		name string
		spec cardsv1alpha1.WebhookEndpointSpec
		want string // a part of the error; "" for none
	}{
		{"upay has nothing to check", cardsv1alpha1.WebhookEndpointSpec{Provider: "upay"}, ""},
		{"generic mapping that compiles", cardsv1alpha1.WebhookEndpointSpec{Provider: "generic",
			Generic: &cardsv1alpha1.GenericMapping{EventType: "body.type", Events: ignore}}, ""},
		{"generic mapping that does not compile", cardsv1alpha1.WebhookEndpointSpec{Provider: "generic",
			Generic: &cardsv1alpha1.GenericMapping{EventType: "body.(", Events: ignore}}, "eventType"},
		{"generic without a mapping", cardsv1alpha1.WebhookEndpointSpec{Provider: "generic"}, "spec.generic"},
		{"tevau time zone", cardsv1alpha1.WebhookEndpointSpec{Provider: "tevau",
			Tevau: &cardsv1alpha1.TevauOptions{TimeZone: "Asia/Shanghai"}}, ""},
		{"tevau unknown time zone", cardsv1alpha1.WebhookEndpointSpec{Provider: "tevau",
			Tevau: &cardsv1alpha1.TevauOptions{TimeZone: "Mars/Olympus"}}, "tevau.timeZone"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateConfig(&cardsv1alpha1.WebhookEndpoint{Spec: c.spec})
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("want no error, got %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("want an error naming %q, got %v", c.want, err)
			}
		})
	}
}
