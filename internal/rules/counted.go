package rules

import (
	"slices"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// Counted reports whether the ledger already counts this authorization: a provider retry of an approved
// request (same key, amount, currency and merchant), which must get the same answer and not be counted again.
// A request that reuses the key with other content (an incremental authorization) is not counted.
func Counted(s *cardsv1alpha1.CardSpend, tx Transaction) bool {
	if s == nil {
		return false
	}
	entry := authorizationEntry(tx)
	return entry != "" && slices.Contains(s.RecentAuthorizations, entry)
}
