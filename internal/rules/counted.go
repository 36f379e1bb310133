package rules

import (
	"slices"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// Counted reports whether the ledger already counts this authorization: a provider retry of an approved
// request, which must get the same answer and not be counted again.
func Counted(s *cardsv1alpha1.CardSpend, tx Transaction) bool {
	if s == nil {
		return false
	}
	key := authorizationKey(tx)
	return key != "" && slices.Contains(s.RecentAuthorizations, key)
}
