// Package adapters lists the built-in provider adapters, one package each.
package adapters

import (
	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/adapters/upay"
)

// All returns an adapter for every provider.
func All() map[cardsv1alpha1.Provider]adapter.Adapter {
	return map[cardsv1alpha1.Provider]adapter.Adapter{
		cardsv1alpha1.ProviderUPay: upay.Adapter{},
	}
}

// Encoders returns the sender side of every provider, for `cardplane simulate` and tests.
func Encoders() map[cardsv1alpha1.Provider]adapter.Encoder {
	return map[cardsv1alpha1.Provider]adapter.Encoder{
		cardsv1alpha1.ProviderUPay: upay.Encode,
	}
}
