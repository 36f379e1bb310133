// Package event is the normalized model every provider adapter produces and the ingester applies.
// Adapters know wire formats and nothing else; everything after them is provider-neutral.
//
// An Event carries the facts of one callback. It holds no full card number, CVC or one-time code, except
// Challenge.Code, which is never stored and only handed to the projection path in memory.
package event

import (
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// Event is one normalized provider callback. A callback may carry several facts at once (e.g. a card
// creation with its number and opening balance); each non-nil fact is applied.
type Event struct {
	// Type is the provider's event type as sent (e.g. "CC_CONSUME"), for metrics, Events and lastEvent.
	Type string
	// ID is the provider's idempotency key for the callback (UPay orderNo, Prepaidify eventId), if any.
	ID string
	// OccurredAt is the provider's time of the facts; the ordering key for "newer wins". Zero when the
	// provider sends no time (the receiver then uses the time it received the callback).
	OccurredAt time.Time

	// CardID is the provider's card ID the facts are about. Empty for holder-level facts (KYC).
	CardID string
	// HolderID is the provider's cardholder/user ID, when sent.
	HolderID string

	Card          *Card
	Balance       *Balance
	Transaction   *Transaction
	Authorization *AuthorizationRequest
	Challenge     *Challenge
	KYC           *KYC
	Logistics     *Logistics
}

// Card is card lifecycle and identity facts.
type Card struct {
	// Phase is the normalized lifecycle phase, empty when the callback does not say.
	Phase cardsv1alpha1.CardPhase
	// ProviderStatus is the provider's own status value, verbatim.
	ProviderStatus string
	// Reason explains the phase (e.g. a risk-control reason).
	Reason string
	Type   cardsv1alpha1.CardType
	// Number is the masked number: adapters reduce any PAN with pan.Reduce before setting it.
	Number *cardsv1alpha1.MaskedNumber
	Expiry *cardsv1alpha1.Expiry
}

// Balance is the card's available balance as an absolute value.
type Balance struct {
	Available cardsv1alpha1.Money
}

// Transaction is the state of one provider transaction.
type Transaction struct {
	// ID is the provider's transaction ID, stable across the pushes of one transaction.
	ID                    string
	Type                  cardsv1alpha1.TransactionType
	Phase                 cardsv1alpha1.TransactionPhase
	ProviderStatus        string
	Direction             cardsv1alpha1.Direction
	Amount                *cardsv1alpha1.Money
	BillingAmount         *cardsv1alpha1.Money
	Fee                   *cardsv1alpha1.Money
	Merchant              *cardsv1alpha1.Merchant
	Channel               string
	Description           string
	FailureReason         string
	OriginalTransactionID string
	AuthorizationID       string
	Crypto                *cardsv1alpha1.CryptoPayment
	// OccurredAt is when the transaction happened (not when this update was sent).
	OccurredAt time.Time
}

// AuthorizationRequest asks for a real-time approve/decline decision.
type AuthorizationRequest struct {
	TransactionID   string
	AuthorizationID string
	Amount          cardsv1alpha1.Money
	Merchant        *cardsv1alpha1.Merchant
	Channel         string
}

// Challenge is a 3-D Secure or verification challenge.
type Challenge struct {
	// ID is the provider's challenge ID (securement, verification or auth ID).
	ID string
	// Purpose is "3ds", "verification" or "activation".
	Purpose string
	// Method is how the code reaches the holder: OTP, OOB, URL.
	Method string
	Status string
	Amount *cardsv1alpha1.Money
	// Merchant the challenged transaction is for, when sent.
	Merchant  *cardsv1alpha1.Merchant
	ExpiresAt time.Time
	// Code is the one-time code. It lives in memory only: it is never written to the API server, logs or
	// Events; the projection path delivers it to destinations that subscribe to challenge.otp.
	Code string `json:"-"`
}

// KYC is the verification state of the card holder.
type KYC struct {
	State  cardsv1alpha1.KYCState
	Reason string
}

// Logistics is the delivery state of a physical card.
type Logistics struct {
	State          cardsv1alpha1.LogisticsState
	Carrier        string
	TrackingNumber string
}

// Ordered is a time for "newer wins" comparisons: the provider's time when it sent one, else receipt time.
func (e *Event) Ordered(received time.Time) time.Time {
	if e.OccurredAt.IsZero() {
		return received
	}
	return e.OccurredAt
}
