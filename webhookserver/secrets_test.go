package webhookserver_test

import (
	"context"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "keys"}, StringData: map[string]string{"signingKey": "one"}}
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
