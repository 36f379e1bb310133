package webhookserver

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SecretReader is a client.Reader that keeps in memory only the Secrets it was asked for. The manager caches
// the metadata of Secrets, not their data (a cluster's Secrets — Helm releases, TLS keys, other teams'
// credentials — have no business in this process's memory). Each Get of a Secret compares the
// resourceVersion in the metadata cache with the copy it holds, and reads the Secret from the API server only
// when it changed (a rotation) or was never read. Other kinds go to Reader.
type SecretReader struct {
	// Reader serves every kind but Secrets (the manager's cached client).
	client.Reader
	// Metadata holds Secrets' metadata (the manager's cache, informed with metadata only).
	Metadata client.Reader
	// Direct reads a Secret from the API server.
	Direct client.Reader

	mu     sync.Mutex
	copies map[client.ObjectKey]*corev1.Secret
}

// Get implements client.Reader.
func (r *SecretReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	secret, ok := obj.(*corev1.Secret)
	if !ok {
		return r.Reader.Get(ctx, key, obj, opts...)
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := r.Metadata.Get(ctx, key, meta); err != nil {
		r.forget(key)
		return err // NotFound included: the Secret is gone
	}
	r.mu.Lock()
	held := r.copies[key]
	r.mu.Unlock()
	if held == nil || held.ResourceVersion != meta.ResourceVersion {
		fresh := &corev1.Secret{}
		if err := r.Direct.Get(ctx, key, fresh); err != nil {
			return err
		}
		r.mu.Lock()
		if r.copies == nil {
			r.copies = map[client.ObjectKey]*corev1.Secret{}
		}
		r.copies[key] = fresh
		r.mu.Unlock()
		held = fresh
	}
	held.DeepCopyInto(secret)
	return nil
}

func (r *SecretReader) forget(key client.ObjectKey) {
	r.mu.Lock()
	delete(r.copies, key)
	r.mu.Unlock()
}
