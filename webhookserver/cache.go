package webhookserver

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// WarmCache registers the informers of every kind the receiver reads, before the manager starts, so the
// manager syncs them before the receiver serves: informers start lazily otherwise, and the first request
// would wait for a sync (over a second on a large cluster), breaking an authorization deadline.
func WarmCache(ctx context.Context, c cache.Informers) error {
	secrets := &metav1.PartialObjectMetadata{} // metadata only: see SecretReader
	secrets.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	namespaces := &metav1.PartialObjectMetadata{} // an endpoint's target namespace consents in an annotation
	namespaces.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	for _, obj := range []client.Object{&cardsv1alpha1.WebhookEndpoint{}, &cardsv1alpha1.Card{},
		&cardsv1alpha1.CardTransaction{}, secrets, namespaces} {
		if _, err := c.GetInformer(ctx, obj); err != nil {
			return fmt.Errorf("starting the %T informer: %w", obj, err)
		}
	}
	return nil
}
