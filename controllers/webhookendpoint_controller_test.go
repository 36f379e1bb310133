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
