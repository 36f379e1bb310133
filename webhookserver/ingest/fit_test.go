package ingest

import (
	"testing"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// Fit removes card numbers from free text whatever the adapter, and leaves identifiers alone.
func TestFitRedactsFreeText(t *testing.T) {
	ev := &event.Event{CardID: "C1", Card: &event.Card{Reason: "card 4111 1111 1111 1111 frozen"},
		Transaction: &event.Transaction{ID: "4111111111111111", Description: "refund to 5555555555554444",
			Merchant: &cardsv1alpha1.Merchant{Name: "Shop 4111111111111111", ID: "4111111111111111"}}}
	if err := Fit(ev); err != nil {
		t.Fatal(err)
	}
	if ev.Card.Reason != "card [card number removed] frozen" || ev.Transaction.Description != "refund to [card number removed]" ||
		ev.Transaction.Merchant.Name != "Shop [card number removed]" {
		t.Errorf("free text kept a card number: %q %q %q", ev.Card.Reason, ev.Transaction.Description, ev.Transaction.Merchant.Name)
	}
	if ev.Transaction.ID != "4111111111111111" || ev.Transaction.Merchant.ID != "4111111111111111" {
		t.Errorf("identifiers changed: %q %q", ev.Transaction.ID, ev.Transaction.Merchant.ID)
	}
}
