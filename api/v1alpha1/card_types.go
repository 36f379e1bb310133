package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// CardPhase is the lifecycle phase of a card, normalized across providers.
// +kubebuilder:validation:Enum=Requested;PendingActivation;Active;Frozen;Locked;Closed;Failed;Unknown
type CardPhase string

// Card phases.
const (
	// CardRequested means applied for, not issued yet.
	CardRequested CardPhase = "Requested"
	// CardPendingActivation means issued (physical cards usually) but not activated.
	CardPendingActivation CardPhase = "PendingActivation"
	// CardActive means usable.
	CardActive CardPhase = "Active"
	// CardFrozen means temporarily blocked by the holder, the program or risk control.
	CardFrozen CardPhase = "Frozen"
	// CardLocked means blocked by the provider (lost, stolen, locked).
	CardLocked CardPhase = "Locked"
	// CardClosed means deactivated, cancelled, deleted or replaced; terminal.
	CardClosed CardPhase = "Closed"
	// CardFailed means issuing failed or was rejected; terminal.
	CardFailed CardPhase = "Failed"
	// CardUnknown means the provider sent a status value no adapter knows; providerStatus keeps it verbatim.
	// Neutral: not usable for authorizations, not terminal.
	CardUnknown CardPhase = "Unknown"
)

// CardType says whether a card is virtual or physical.
// +kubebuilder:validation:Enum=Virtual;Physical
type CardType string

// Card types.
const (
	CardVirtual  CardType = "Virtual"
	CardPhysical CardType = "Physical"
)

// CardSpec is the immutable identity of a card. Cards are created by the receiver on first sight.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="card identity (endpointRef, provider, providerCardID) is immutable"
type CardSpec struct {
	// endpointRef is the WebhookEndpoint whose callbacks describe this card.
	// +required
	EndpointRef NamespacedObjectReference `json:"endpointRef,omitzero"`

	// provider is the card issuer's adapter.
	// +required
	Provider Provider `json:"provider,omitempty"`

	// providerCardID is the provider's ID of the card.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	ProviderCardID string `json:"providerCardID,omitempty"`
}

// NamedAmount is an amount under the provider's name for it.
type NamedAmount struct {
	// name is the provider's field name, verbatim (e.g. refund_amount).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Name string `json:"name,omitempty"`

	// amount reported.
	// +required
	Amount Money `json:"amount,omitzero"`
}

// MaskedNumber is all this operator ever keeps of a card number: the BIN and the last four digits.
// There is deliberately no field that could hold a full PAN or a CVC.
type MaskedNumber struct {
	// bin is the issuer identification number: the first 6 or 8 digits.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]{6}([0-9]{2})?$`
	// +kubebuilder:validation:MinLength=1
	BIN string `json:"bin,omitempty"`

	// last4 is the last four digits.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]{4}$`
	// +kubebuilder:validation:MinLength=1
	Last4 string `json:"last4,omitempty"`
}

// Expiry is a card's expiry month.
type Expiry struct {
	// month is 1 to 12.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=12
	Month int32 `json:"month,omitempty"`

	// year is the four-digit year.
	// +required
	// +kubebuilder:validation:Minimum=2000
	// +kubebuilder:validation:Maximum=2200
	Year int32 `json:"year,omitempty"`
}

// Balance is a card's balance as last reported by the provider.
type Balance struct {
	// available is the spendable balance.
	// +required
	Available Money `json:"available,omitzero"`

	// observedAt is the provider time of the event that reported this balance; an older event never overwrites it.
	// +optional
	ObservedAt *metav1.MicroTime `json:"observedAt,omitempty"`

	// event is the provider event type that reported this balance: the balance is as of that event.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:MinLength=1
	Event string `json:"event,omitempty"`
}

// KYCState is the verification state of a card holder.
// +kubebuilder:validation:Enum=Unverified;Pending;Approved;Rejected;Unknown
type KYCState string

// KYC states.
const (
	KYCUnverified KYCState = "Unverified"
	KYCPending    KYCState = "Pending"
	KYCApproved   KYCState = "Approved"
	KYCRejected   KYCState = "Rejected"
	// KYCUnknown is a verification status no adapter knows, kept verbatim in providerStatus.
	KYCUnknown KYCState = "Unknown"
)

// KYC is the holder's verification state where the provider reports it.
type KYC struct {
	// state of the verification.
	// +required
	State KYCState `json:"state,omitempty"`

	// reason the provider gave, e.g. for a rejection.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:MinLength=1
	Reason string `json:"reason,omitempty"`

	// providerStatus is the provider's own verification status value, verbatim (set at least when state is
	// Unknown).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:MinLength=1
	ProviderStatus string `json:"providerStatus,omitempty"`

	// observedAt is the provider time of the event that reported this state.
	// +optional
	ObservedAt *metav1.MicroTime `json:"observedAt,omitempty"`
}

// LogisticsState is where a physical card is on its way to the holder.
// +kubebuilder:validation:Enum=InProduction;Shipped;Delivered;Activated;Bound
type LogisticsState string

// Logistics states.
const (
	LogisticsInProduction LogisticsState = "InProduction"
	LogisticsShipped      LogisticsState = "Shipped"
	LogisticsDelivered    LogisticsState = "Delivered"
	LogisticsActivated    LogisticsState = "Activated"
	LogisticsBound        LogisticsState = "Bound"
)

// Logistics tracks the delivery of a physical card. The recipient's address is not kept.
type Logistics struct {
	// state of the delivery.
	// +required
	State LogisticsState `json:"state,omitempty"`

	// carrier is the logistics company.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:MinLength=1
	Carrier string `json:"carrier,omitempty"`

	// trackingNumber is the carrier's tracking number.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:MinLength=1
	TrackingNumber string `json:"trackingNumber,omitempty"`

	// observedAt is the provider time of the event that reported this state.
	// +optional
	ObservedAt *metav1.MicroTime `json:"observedAt,omitempty"`
}

// CardTotals are running totals over the card's transactions, kept so that old CardTransactions
// can be deleted by retention without losing the sums.
type CardTotals struct {
	// currency of the sums.
	// +required
	// +kubebuilder:validation:Pattern=`^[A-Z]{3}$`
	// +kubebuilder:validation:MinLength=1
	Currency string `json:"currency,omitempty"`

	// spent is the sum of completed debits (purchases, withdrawals, fees).
	// +optional
	// +kubebuilder:validation:MinLength=1
	Spent Decimal `json:"spent,omitempty"`

	// credited is the sum of completed credits (top-ups, refunds).
	// +optional
	// +kubebuilder:validation:MinLength=1
	Credited Decimal `json:"credited,omitempty"`

	// transactions counts the settled transactions ever recorded for the card.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Transactions int64 `json:"transactions,omitempty"`

	// recentTransactions are the names of the latest transactions added, so a retried addition is not counted
	// twice.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	RecentTransactions []string `json:"recentTransactions,omitempty"`
}

// SpendWindowKind is a spending-limit window.
// +kubebuilder:validation:Enum=Daily;Weekly;Monthly;AllTime
type SpendWindowKind string

// Spend windows.
const (
	SpendDaily   SpendWindowKind = "Daily"
	SpendWeekly  SpendWindowKind = "Weekly"
	SpendMonthly SpendWindowKind = "Monthly"
	SpendAllTime SpendWindowKind = "AllTime"
)

// SpendWindow is what the card spent, by approved authorizations, in one window and currency.
type SpendWindow struct {
	// window kind.
	// +required
	Window SpendWindowKind `json:"window,omitempty"`

	// start of the window (midnight, Monday or the 1st in the rule set's time zone); absent for AllTime.
	// +optional
	Start *metav1.Time `json:"start,omitempty"`

	// currency of the amount.
	// +required
	// +kubebuilder:validation:Pattern=`^[A-Z]{3}$`
	// +kubebuilder:validation:MinLength=1
	Currency string `json:"currency,omitempty"`

	// amount approved in the window.
	// +required
	// +kubebuilder:validation:MinLength=1
	Amount Decimal `json:"amount,omitempty"`

	// count of approved authorizations in the window.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Count int64 `json:"count,omitempty"`
}

// CardSpend is the spend ledger the authorization rules read. It lives on the Card so that every receiver
// replica updates it under the API server's optimistic concurrency: two replicas can never both approve past a
// limit, and a restart forgets nothing.
type CardSpend struct {
	// windows are the current windows; a window whose start has passed is replaced when next written.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Windows []SpendWindow `json:"windows,omitempty"`

	// recentAuthorizations are the latest authorization IDs counted, so a retried request is not counted twice.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=128
	RecentAuthorizations []string `json:"recentAuthorizations,omitempty"`
}

// CardStatus is the state of a card as observed from its provider's callbacks.
type CardStatus struct {
	// conditions are Ready, Frozen, Closed and ProjectionFailed.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// phase is the normalized lifecycle phase.
	// +optional
	Phase CardPhase `json:"phase,omitempty"`

	// providerStatus is the provider's own status value behind phase, e.g. "3" for UPay Frozen.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:MinLength=1
	ProviderStatus string `json:"providerStatus,omitempty"`

	// phaseReason is the reason the provider gave for the last phase change.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:MinLength=1
	PhaseReason string `json:"phaseReason,omitempty"`

	// phaseObservedAt is the provider time of the event that set phase; an older event never overwrites it.
	// +optional
	PhaseObservedAt *metav1.MicroTime `json:"phaseObservedAt,omitempty"`

	// type says whether the card is virtual or physical.
	// +optional
	Type CardType `json:"type,omitempty"`

	// number is the masked card number.
	// +optional
	Number *MaskedNumber `json:"number,omitempty"`

	// expiry of the card.
	// +optional
	Expiry *Expiry `json:"expiry,omitempty"`

	// holderID is the provider's ID of the card holder (user, customer or cardholder ID).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:MinLength=1
	HolderID string `json:"holderID,omitempty"`

	// holderRef is the CardHolder (in the same namespace) the card belongs to, when the provider names one.
	// +optional
	HolderRef *LocalObjectReference `json:"holderRef,omitempty"`

	// balance is the last reported balance.
	// +optional
	Balance *Balance `json:"balance,omitempty"`

	// providerFields are provider IDs and values about the card kept verbatim for reconciliation (e.g. UPay
	// dispatchTime), keyed by the provider's field name.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 64 && self[k].size() <= 256)",message="providerFields keys are at most 64 and values at most 256 characters"
	ProviderFields map[string]string `json:"providerFields,omitempty"`

	// providerAmounts are amounts the provider reported about the card that are not transactions of it (e.g.
	// the fee paid for applying, the balance refunded on closing), by the provider's field name.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	ProviderAmounts []NamedAmount `json:"providerAmounts,omitempty"`

	// totals are running sums over the card's transactions.
	// +optional
	Totals *CardTotals `json:"totals,omitempty"`

	// spend is the authorization spend ledger (approved amounts per window).
	// +optional
	Spend *CardSpend `json:"spend,omitempty"`

	// kyc is the holder's verification state.
	// +optional
	KYC *KYC `json:"kyc,omitempty"`

	// logistics is the delivery state of a physical card.
	// +optional
	Logistics *Logistics `json:"logistics,omitempty"`

	// lastEvent is the provider event that last changed this card.
	// +optional
	LastEvent *ProviderEvent `json:"lastEvent,omitempty"`

	// stateSequence increases by one with every change of the card's observed state; projection delivers it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	StateSequence int64 `json:"stateSequence,omitempty"`

	// deliveries are the per-object projection cursors of earlier releases. They are no longer written: the
	// delivery state is kept per destination in the WebhookEndpoint's status.destinations.
	// +optional
	// +listType=map
	// +listMapKey=destination
	// +kubebuilder:validation:MaxItems=16
	Deliveries []DeliveryCursor `json:"deliveries,omitempty"`

	// observedGeneration is the generation the controllers last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// Card is one issued payment card, as its provider reports it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cpcard,categories=cardplane
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Last4",type=string,JSONPath=`.status.number.last4`
// +kubebuilder:printcolumn:name="Balance",type=string,JSONPath=`.status.balance.available.value`
// +kubebuilder:printcolumn:name="Currency",type=string,JSONPath=`.status.balance.available.currency`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Card struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the card's immutable identity.
	// +required
	Spec CardSpec `json:"spec,omitzero"`

	// status is the card as observed from its provider's callbacks.
	// +optional
	Status CardStatus `json:"status,omitempty"`
}

// CardList is a list of Cards.
// +kubebuilder:object:root=true
type CardList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Card `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &Card{}, &CardList{})
}
