package controllers_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// An endpoint that would send one-time codes to a plain http:// destination is not Ready, caught when it is
// applied; with https:// (or an allow-listed private range for its other destinations) it is.
func TestEndpointWithOTPOverPlainHTTPIsNotReady(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	startManager(t, ns)
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}}, StringData: map[string]string{cardsv1alpha1.SecretKeySigningKey: "k"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sms", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}}, StringData: map[string]string{cardsv1alpha1.SecretKeyDestinationSecret: destinationSecret}},
	} {
		if err := k8s.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "upay-main"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay,
			CredentialsRef:    &cardsv1alpha1.LocalObjectReference{Name: "creds"},
			DestinationPolicy: &cardsv1alpha1.DestinationPolicy{AllowedCIDRs: []string{"10.0.0.0/8"}},
			Destinations: []cardsv1alpha1.Destination{
				{Name: "ledger", URL: "http://10.0.0.7/hooks", SecretRef: cardsv1alpha1.LocalObjectReference{Name: "sms"}},
				{Name: "sms", URL: "http://otp.example.com/hooks", SecretRef: cardsv1alpha1.LocalObjectReference{Name: "sms"},
					EventTypes: []cardsv1alpha1.DestinationEventType{cardsv1alpha1.EventChallengeOTP}},
			}}}
	if err := k8s.Create(ctx, ep); err != nil {
		t.Fatal(err)
	}
	ready := func() *metav1.Condition {
		got := &cardsv1alpha1.WebhookEndpoint{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(ep), got); err != nil || got.Status.ObservedGeneration != got.Generation {
			return nil
		}
		return apimeta.FindStatusCondition(got.Status.Conditions, cardsv1alpha1.ConditionReady)
	}
	var cond *metav1.Condition
	waitFor(t, "Ready False InvalidConfig", func() bool {
		cond = ready()
		return cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == cardsv1alpha1.ReasonInvalidConfig
	}, func() { t.Logf("Ready = %+v", ready()) })
	if !strings.Contains(cond.Message, "destination sms: challenge.otp carries one-time codes and needs an https:// url") {
		t.Errorf("message %q does not name the destination and the fix", cond.Message)
	}

	patch := client.MergeFrom(ep.DeepCopy())
	ep.Spec.Destinations[1].URL = "https://otp.example.com/hooks"
	if err := k8s.Patch(ctx, ep, patch); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Ready True", func() bool {
		c := ready()
		return c != nil && c.Status == metav1.ConditionTrue
	}, func() { t.Logf("Ready = %+v", ready()) })
}

// A destination whose signing Secret is missing does not stop ingestion: Ready stays True (the receiver
// serves the endpoint) and DestinationsReady names the destination and the Secret. Before, the missing
// signing Secret made the endpoint Ready=False, and every provider callback was refused with 503.
func TestAMissingDestinationSecretDoesNotStopIngestion(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	startManager(t, ns)
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}},
		StringData: map[string]string{cardsv1alpha1.SecretKeySigningKey: "k"}}
	if err := k8s.Create(ctx, creds); err != nil {
		t.Fatal(err)
	}
	ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "upay-main"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay,
			CredentialsRef: &cardsv1alpha1.LocalObjectReference{Name: "creds"},
			Destinations: []cardsv1alpha1.Destination{
				{Name: "ledger", URL: "https://ledger.example.com/hooks", SecretRef: cardsv1alpha1.LocalObjectReference{Name: "ledger-signing"}}}}}
	if err := k8s.Create(ctx, ep); err != nil {
		t.Fatal(err)
	}
	condition := func(typ string) *metav1.Condition {
		got := &cardsv1alpha1.WebhookEndpoint{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(ep), got); err != nil || got.Status.ObservedGeneration != got.Generation {
			return nil
		}
		return apimeta.FindStatusCondition(got.Status.Conditions, typ)
	}
	is := func(c *metav1.Condition, status metav1.ConditionStatus, reason string) bool {
		return c != nil && c.Status == status && c.Reason == reason
	}
	waitFor(t, "DestinationsReady False SecretNotFound", func() bool {
		return is(condition(cardsv1alpha1.ConditionDestinationsReady), metav1.ConditionFalse, cardsv1alpha1.ReasonSecretNotFound)
	}, func() {
		t.Logf("Ready %+v, DestinationsReady %+v", condition("Ready"), condition(cardsv1alpha1.ConditionDestinationsReady))
	})
	if c := condition(cardsv1alpha1.ConditionReady); !is(c, metav1.ConditionTrue, cardsv1alpha1.ReasonAccepting) {
		t.Errorf("Ready = %+v, want True Accepting: a destination's Secret must not stop ingestion", c)
	}
	if c := condition(cardsv1alpha1.ConditionDestinationsReady); !strings.Contains(c.Message, "destination ledger:") || !strings.Contains(c.Message, ns+"/ledger-signing") {
		t.Errorf("DestinationsReady message %q does not name the destination and its Secret", c.Message)
	}
}
