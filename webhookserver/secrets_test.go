package webhookserver_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// countingReader counts the Secrets read from the API server.
type countingReader struct {
	client.Reader
	secrets atomic.Int64
}

func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Secret); ok {
		r.secrets.Add(1)
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

// TestSecretReaderReadsOnlyWhatChanged: a Secret is read from the API server once, then served from memory
// until its resourceVersion in the metadata cache moves (a rotation); a deleted Secret is NotFound.
func TestSecretReaderReadsOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "keys", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}}, StringData: map[string]string{"signingKey": "one"}}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(s)
	get := func() (string, error) {
		got := &corev1.Secret{}
		err := secrets.Get(ctx, key, got)
		return string(got.Data["signingKey"]), err
	}
	waitFor(t, "the Secret's metadata in the cache", func() bool { _, err := get(); return err == nil })

	before := directReads.secrets.Load()
	for range 20 {
		if v, err := get(); err != nil || v != "one" {
			t.Fatalf("get = %q, %v", v, err)
		}
	}
	if n := directReads.secrets.Load() - before; n != 0 {
		t.Errorf("%d reads from the API server for an unchanged Secret, want 0", n)
	}

	s.StringData = map[string]string{"signingKey": "two"}
	if err := k8s.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rotated key", func() bool { v, _ := get(); return v == "two" })
	if n := directReads.secrets.Load() - before; n < 1 || n > 3 {
		t.Errorf("%d reads from the API server for one rotation", n)
	}

	if err := k8s.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted Secret to be NotFound", func() bool { _, err := get(); return apierrors.IsNotFound(err) })
}

// TestSecretReaderPreloadsOnceForAnEndpoint: an endpoint's Secret is read when the endpoint appears (so the
// first callback, or one during an API outage, needs no API call), and not again on the endpoint's frequent
// updates (status counters every second).
func TestSecretReaderPreloadsOnceForAnEndpoint(t *testing.T) {
	ctx := context.Background()
	ep := createEndpoint(t, &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: newNamespace(t), Name: "upay"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay}}, map[string]string{"signingKey": "k"})
	key := client.ObjectKey{Namespace: ep.Namespace, Name: ep.Spec.CredentialsRef.Name}
	waitFor(t, "the endpoint's Secret preloaded", func() bool { return secrets.Holds(key) })

	before := directReads.secrets.Load()
	for i := range 5 {
		patch := client.MergeFrom(ep.DeepCopy())
		ep.Labels = map[string]string{"touch": fmt.Sprint(i)}
		if err := k8s.Patch(ctx, ep, patch); err != nil {
			t.Fatal(err)
		}
	}
	got := &corev1.Secret{}
	if err := secrets.Get(ctx, key, got); err != nil || string(got.Data["signingKey"]) != "k" {
		t.Fatalf("get = %q, %v", got.Data["signingKey"], err)
	}
	if n := directReads.secrets.Load() - before; n != 0 {
		t.Errorf("%d reads from the API server after endpoint updates and a Get of a held Secret, want 0", n)
	}
}
