package webhookserver

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
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
		var err error
		if held, err = r.load(ctx, key); err != nil {
			return err
		}
	}
	held.DeepCopyInto(secret)
	return nil
}

// Holds reports whether the Secret's data is in memory.
func (r *SecretReader) Holds(key client.ObjectKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.copies[key]
	return ok
}

func (r *SecretReader) forget(key client.ObjectKey) {
	r.mu.Lock()
	delete(r.copies, key)
	r.mu.Unlock()
}

// Watch keeps the held copies current on this replica, so that a callback needs no API call for its
// credentials and an API-server outage (the spool's case) still finds them in memory: when an endpoint
// appears or changes, the Secrets it names are read; when a held Secret changes, it is read again; when it is
// deleted, it is forgotten. Call it before the manager starts.
func (r *SecretReader) Watch(ctx context.Context, informers cache.Informers) error {
	endpoints, err := informers.GetInformer(ctx, &cardsv1alpha1.WebhookEndpoint{})
	if err != nil {
		return err
	}
	// Endpoints are updated often (their status counters, every second while callbacks arrive): only Secrets
	// not held yet are read; held ones are kept current by the Secret handler below.
	prefetch := func(obj any) {
		ep, ok := obj.(*cardsv1alpha1.WebhookEndpoint)
		if !ok {
			return
		}
		for _, name := range endpointconfig.SecretNames(ep) {
			if key := (client.ObjectKey{Namespace: ep.Namespace, Name: name}); !r.Holds(key) {
				go r.refresh(ctx, key)
			}
		}
	}
	if _, err := endpoints.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    prefetch,
		UpdateFunc: func(_, obj any) { prefetch(obj) },
	}); err != nil {
		return err
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	secrets, err := informers.GetInformer(ctx, meta)
	if err != nil {
		return err
	}
	held := func(obj any) (client.ObjectKey, bool) {
		m, ok := obj.(*metav1.PartialObjectMetadata)
		if !ok {
			return client.ObjectKey{}, false
		}
		key := client.ObjectKeyFromObject(m)
		return key, r.Holds(key)
	}
	_, err = secrets.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, obj any) {
			if o, ok := old.(*metav1.PartialObjectMetadata); ok && o.ResourceVersion == obj.(metav1.Object).GetResourceVersion() {
				return // a resync, not a change
			}
			if key, ok := held(obj); ok {
				go r.refresh(ctx, key)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if key, ok := held(obj); ok {
				r.forget(key)
			}
		},
	})
	return err
}

// refresh loads a Secret in the background; a missing one is not an error here (the endpoint's Ready
// condition says so).
func (r *SecretReader) refresh(ctx context.Context, key client.ObjectKey) { _, _ = r.load(ctx, key) }

// load reads a Secret from the API server into the held copies.
func (r *SecretReader) load(ctx context.Context, key client.ObjectKey) (*corev1.Secret, error) {
	fresh := &corev1.Secret{}
	if err := r.Direct.Get(ctx, key, fresh); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.copies == nil {
		r.copies = map[client.ObjectKey]*corev1.Secret{}
	}
	r.copies[key] = fresh
	return fresh, nil
}
