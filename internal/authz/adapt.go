package authz

import (
	"context"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// Authorize is Decide for the receiver's normalized authorization requests.
func (a *Authorizer) Authorize(ctx context.Context, card *cardsv1alpha1.Card, req *event.AuthorizationRequest) cardsv1alpha1.AuthorizationDecision {
	return a.Decide(ctx, card, Request(req))
}
