package projection

import (
	"context"

	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
)

// EndpointOf finds the WebhookEndpoint of a card, or of a transaction's card; nil when either is gone, or when
// the endpoint does not write into the card's namespace.
func EndpointOf(ctx context.Context, c client.Reader, obj client.Object) (*cardsv1alpha1.WebhookEndpoint, error) {
	card, ok := obj.(*cardsv1alpha1.Card)
	if txn, isTxn := obj.(*cardsv1alpha1.CardTransaction); isTxn {
		card, ok = &cardsv1alpha1.Card{}, true
		if err := c.Get(ctx, client.ObjectKey{Namespace: txn.Namespace, Name: txn.Spec.CardRef.Name}, card); err != nil {
			return nil, client.IgnoreNotFound(err)
		}
	}
	if !ok {
		return nil, nil
	}
	ep := &cardsv1alpha1.WebhookEndpoint{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: card.Spec.EndpointRef.Namespace, Name: card.Spec.EndpointRef.Name}, ep); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if !serves(ep, card.Namespace) {
		logf.FromContext(ctx).Info("Ignoring a card that names an endpoint writing to another namespace", "endpoint", klog.KObj(ep),
			"targetNamespace", endpointconfig.TargetNamespace(ep))
		return nil, nil
	}
	return ep, nil
}

// serves reports whether ep writes into namespace. A card outside the namespace its endpoint writes to was not
// written by that endpoint: anyone who may create a Card could point it at another team's endpoint, whose
// destinations and signing keys must not serve it.
func serves(ep *cardsv1alpha1.WebhookEndpoint, namespace string) bool {
	return endpointconfig.TargetNamespace(ep) == namespace
}
