// Package adapters lists the built-in provider adapters, one package each.
package adapters

import (
	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/adapters/alchemypay"
	"github.com/cardplane/cardplane/webhookserver/adapters/bananatech"
	"github.com/cardplane/cardplane/webhookserver/adapters/generic"
	"github.com/cardplane/cardplane/webhookserver/adapters/prepaidify"
	"github.com/cardplane/cardplane/webhookserver/adapters/tevau"
	"github.com/cardplane/cardplane/webhookserver/adapters/upay"
)

// All returns an adapter for every provider.
func All() map[cardsv1alpha1.Provider]adapter.Adapter {
	return all()
}

// ValidateConfig runs the provider's own checks of an endpoint's options (adapter.ConfigValidator), for the
// WebhookEndpoint reconciler.
func ValidateConfig(ep *cardsv1alpha1.WebhookEndpoint) error {
	if v, ok := validators[ep.Spec.Provider].(adapter.ConfigValidator); ok {
		return v.ValidateConfig(ep)
	}
	return nil
}

// validators are adapters kept for their ValidateConfig only (the receiver has its own from All).
var validators = all()

func all() map[cardsv1alpha1.Provider]adapter.Adapter {
	return map[cardsv1alpha1.Provider]adapter.Adapter{
		cardsv1alpha1.ProviderUPay:       upay.Adapter{},
		cardsv1alpha1.ProviderTevau:      tevau.Adapter{},
		cardsv1alpha1.ProviderBananaTech: bananatech.Adapter{},
		cardsv1alpha1.ProviderPrepaidify: prepaidify.Adapter{},
		cardsv1alpha1.ProviderAlchemyPay: alchemypay.Adapter{},
		// One shared instance: it caches each endpoint's compiled mapping.
		cardsv1alpha1.ProviderGeneric: &generic.Adapter{},
	}
}

// Encoders returns the sender side of every provider, for `cardplane simulate` and tests.
func Encoders() map[cardsv1alpha1.Provider]adapter.Encoder {
	return map[cardsv1alpha1.Provider]adapter.Encoder{
		cardsv1alpha1.ProviderUPay:       upay.Encode,
		cardsv1alpha1.ProviderTevau:      tevau.Encode,
		cardsv1alpha1.ProviderBananaTech: bananatech.Encode,
		cardsv1alpha1.ProviderPrepaidify: prepaidify.Encode,
		cardsv1alpha1.ProviderAlchemyPay: alchemypay.Encode,
		cardsv1alpha1.ProviderGeneric:    generic.Encode,
	}
}
