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

	// CardID is the provider's card ID the facts are about. Empty for holder-level facts (KYC, a refused
	// application, an account-wide risk action): those are kept on the CardHolder, and card facts in such an
	// event (a freeze) apply to every card of the holder.
	CardID string
	// HolderID is the provider's cardholder/user ID, when sent. An event with a holder ID is recorded on the
	// CardHolder of that ID (created on first sight), with or without a card.
	HolderID string

	Card          *Card
	Balance       *Balance
	Transaction   *Transaction
	Authorization *AuthorizationRequest
	Challenge     *Challenge
	KYC           *KYC
	Logistics     *Logistics
	// Failure is a request the provider reports failed (a card application refused). Kept on the holder; when
	// the event names neither card nor holder, the receiver records it as an endpoint Event and counter.
	Failure *Failure
	// Risk is a risk-control action on the holder as a whole.
	Risk *RiskAction
}

// Failure is a failed request, in the provider's words.
type Failure struct {
	// Kind is what failed, e.g. the event type CARD_APPLY_RESULT.
	Kind string
	// Reason, ProviderStatus and Reference (the failed request's ID) are verbatim.
	Reason, ProviderStatus, Reference string
}

// RiskAction is a holder-level risk-control action, verbatim (e.g. FREEZE_ACCOUNT).
type RiskAction struct {
	Action, Reason string
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
	// References are provider values about the card kept verbatim (status.providerFields), keyed by the
	// provider's field name.
	References map[string]string
	// Amounts are provider amounts about the card that are not its transactions (status.providerAmounts),
	// keyed by the provider's field name: the fee paid for an application, the balance refunded on closing.
	Amounts map[string]cardsv1alpha1.Money
}

// Balance is the card's available balance as an absolute value. Every event that carries the card's balance
// sets it; the ingester keeps the newest by the event's time and records which event reported it.
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
	// Fees is the provider's fee breakdown; Fee is then their sum (in one currency).
	Fees []cardsv1alpha1.FeeComponent
	// ExchangeRate between Amount and BillingAmount, exact, as the provider sent it.
	ExchangeRate cardsv1alpha1.Decimal
	// References are provider IDs besides ID kept verbatim (status.providerFields), keyed by the
	// provider's field name (thirdOrderNo, trace, orderNo).
	References map[string]string
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
	// References are provider values kept verbatim on the transaction the request opens (providerFields).
	References map[string]string
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
	// ProviderStatus is the provider's status value, verbatim; required with State KYCUnknown.
	ProviderStatus string
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
