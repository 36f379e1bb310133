package chaos

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// newUPayEndpoint creates a namespace named after prefix, the UPay credentials Secret and a UPay endpoint
// "upay" in it.
func newUPayEndpoint(t *testing.T, prefix string) *cardsv1alpha1.WebhookEndpoint {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "creds"},
		StringData: map[string]string{cardsv1alpha1.SecretKeySigningKey: upayKey}}); err != nil {
		t.Fatal(err)
	}
	ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "upay"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay, CredentialsRef: &cardsv1alpha1.LocalObjectReference{Name: "creds"}}}
	if err := env.Client.Create(ctx, ep); err != nil {
		t.Fatal(err)
	}
	return ep
}

// ready reports whether ep is Ready as r sees it (a manager's cache, or the API server).
func ready(r client.Reader, ep *cardsv1alpha1.WebhookEndpoint) func() bool {
	return func() bool {
		got := &cardsv1alpha1.WebhookEndpoint{}
		_ = r.Get(context.Background(), client.ObjectKeyFromObject(ep), got)
		return len(got.Status.Conditions) > 0 && got.Status.Conditions[0].Status == metav1.ConditionTrue
	}
}
