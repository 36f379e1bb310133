package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// TransactionType is the normalized kind of a provider transaction.
// +kubebuilder:validation:Enum=Authorization;Purchase;Clearing;Refund;Reversal;TopUp;Fee;Withdrawal;Redemption;Correction;CryptoOrder;Other
type TransactionType string

// Transaction types.
const (
	TransactionAuthorization TransactionType = "Authorization"
	TransactionPurchase      TransactionType = "Purchase"
	TransactionClearing      TransactionType = "Clearing"
	TransactionRefund        TransactionType = "Refund"
	TransactionReversal      TransactionType = "Reversal"
	TransactionTopUp         TransactionType = "TopUp"
	TransactionFee           TransactionType = "Fee"
	TransactionWithdrawal    TransactionType = "Withdrawal"
	TransactionRedemption    TransactionType = "Redemption"
	TransactionCorrection    TransactionType = "Correction"
	TransactionCryptoOrder   TransactionType = "CryptoOrder"
	TransactionOther         TransactionType = "Other"
)

// TransactionPhase is the normalized state of a transaction.
// +kubebuilder:validation:Enum=Pending;Completed;Declined;Reversed;Refunded;Failed;Expired;Canceled;Unknown
type TransactionPhase string

// Transaction phases.
const (
	TransactionPending   TransactionPhase = "Pending"
	TransactionCompleted TransactionPhase = "Completed"
	TransactionDeclined  TransactionPhase = "Declined"
	TransactionReversed  TransactionPhase = "Reversed"
	TransactionRefunded  TransactionPhase = "Refunded"
	TransactionFailed    TransactionPhase = "Failed"
	TransactionExpired   TransactionPhase = "Expired"
	TransactionCanceled  TransactionPhase = "Canceled"
	// TransactionUnknown is a status value no adapter knows, kept verbatim in providerStatus. Neutral: never
	// counted in the totals, never final.
	TransactionUnknown TransactionPhase = "Unknown"
)

// FeeComponent is one named part of a transaction's fee.
type FeeComponent struct {
	// name is the provider's name of the fee, verbatim (e.g. "transactionFee").
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Name string `json:"name,omitempty"`

	// amount of the fee.
	// +required
	Amount Money `json:"amount,omitzero"`
}

// Direction says whether money left or reached the card.
// +kubebuilder:validation:Enum=Debit;Credit
type Direction string

// Directions.
const (
	Debit  Direction = "Debit"
	Credit Direction = "Credit"
)

// CardTransactionSpec is the immutable identity of a transaction.
// The object's name is derived from provider and providerTransactionID, so a repeated callback finds the same object.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="transaction identity (cardRef, provider, providerTransactionID) is immutable"
type CardTransactionSpec struct {
	// cardRef is the Card (in the same namespace) the transaction belongs to; it also owns it.
	// +required
	CardRef LocalObjectReference `json:"cardRef,omitzero"`

	// provider is the card issuer's adapter.
	// +required
	Provider Provider `json:"provider,omitempty"`

	// providerTransactionID is the provider's ID of the transaction (stable across its pushes).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	ProviderTransactionID string `json:"providerTransactionID,omitempty"`
}

// Merchant is where a card was used.
type Merchant struct {
	// name of the merchant.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name,omitempty"`

	// mcc is the ISO 18245 merchant category code.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]{4}$`
	// +kubebuilder:validation:MinLength=1
	MCC string `json:"mcc,omitempty"`

	// country is the merchant's ISO 3166-1 country code (alpha-2, or alpha-3 when the provider sends that).
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Z]{2,3}$`
	// +kubebuilder:validation:MinLength=1
	Country string `json:"country,omitempty"`

	// id is the acquirer's merchant ID.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:MinLength=1
	ID string `json:"id,omitempty"`
}

// CryptoPayment is the crypto side of a card order paid in crypto (Alchemy Pay).
type CryptoPayment struct {
	// asset is the token, e.g. USDT.
	// +required
	// +kubebuilder:validation:Pattern=`^[A-Z0-9]{2,12}$`
	// +kubebuilder:validation:MinLength=1
	Asset string `json:"asset,omitempty"`

	// amount paid in the asset.
	// +optional
	// +kubebuilder:validation:MinLength=1
	Amount Decimal `json:"amount,omitempty"`

	// network the payment used, e.g. TRX.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:MinLength=1
	Network string `json:"network,omitempty"`

	// fee charged in the asset (apply, recharge, delivery fees and markup together).
	// +optional
	// +kubebuilder:validation:MinLength=1
	Fee Decimal `json:"fee,omitempty"`
}

// DecisionOutcome is an authorization answer.
// +kubebuilder:validation:Enum=Approved;Declined
type DecisionOutcome string

// Decision outcomes.
const (
	DecisionApproved DecisionOutcome = "Approved"
	DecisionDeclined DecisionOutcome = "Declined"
)

// RuleMode says whether a rule's decision is enforced.
// +kubebuilder:validation:Enum=enforce;shadow
type RuleMode string

// Rule modes.
const (
	RuleEnforce RuleMode = "enforce"
	RuleShadow  RuleMode = "shadow"
)

// RuleResult is what one rule decided.
type RuleResult struct {
	// outcome the rule produced.
	// +required
	Outcome DecisionOutcome `json:"outcome,omitempty"`

	// rule that produced the outcome; empty when the rule set's default applied.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:MinLength=1
	Rule string `json:"rule,omitempty"`

	// reason code, e.g. BLOCKED_MCC, SPEND_LIMIT_DAILY, STAND_IN_TIMEOUT.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:MinLength=1
	Reason string `json:"reason,omitempty"`

	// mode of the rule.
	// +optional
	Mode RuleMode `json:"mode,omitempty"`
}

// AuthorizationDecision is the answer this operator gave to a real-time authorization request.
type AuthorizationDecision struct {
	RuleResult `json:",inline"`

	// ruleSetVersion names the rule set and its resourceVersion, e.g. payments/card-rules@18342.
	// +optional
	// +kubebuilder:validation:MaxLength=320
	// +kubebuilder:validation:MinLength=1
	RuleSetVersion string `json:"ruleSetVersion,omitempty"`

	// ruleSetRevision is the source revision (e.g. the Git commit) of the deciding rule set, from its ConfigMap's
	// cards.cardplane.io/revision annotation; empty when the ConfigMap carries none.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:MinLength=1
	RuleSetRevision string `json:"ruleSetRevision,omitempty"`

	// latencyMicroseconds is how long the decision took, from request to answer.
	// +optional
	// +kubebuilder:validation:Minimum=0
	LatencyMicroseconds int64 `json:"latencyMicroseconds,omitempty"`

	// decidedAt is when the decision was answered.
	// +optional
	DecidedAt *metav1.Time `json:"decidedAt,omitempty"`

	// shadow are the results of shadow-mode rules that would have declined, recorded beside the enforced outcome.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	Shadow []RuleResult `json:"shadow,omitempty"`
}

// CardTransactionStatus is a transaction as observed from its provider's callbacks.
type CardTransactionStatus struct {
	// conditions are ProjectionFailed when a state could not be delivered.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// type of the transaction.
	// +optional
	Type TransactionType `json:"type,omitempty"`

	// phase of the transaction.
	// +optional
	Phase TransactionPhase `json:"phase,omitempty"`

	// providerStatus is the provider's own status value behind phase.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:MinLength=1
	ProviderStatus string `json:"providerStatus,omitempty"`

	// direction says whether money left or reached the card.
	// +optional
	Direction Direction `json:"direction,omitempty"`

	// amount in the transaction (merchant) currency.
	// +optional
	Amount *Money `json:"amount,omitempty"`

	// billingAmount in the card's currency, when it differs from amount.
	// +optional
	BillingAmount *Money `json:"billingAmount,omitempty"`

	// fee charged for the transaction (the sum of fees, when the provider breaks it down).
	// +optional
	Fee *Money `json:"fee,omitempty"`

	// fees is the provider's breakdown of the fee, in the order sent.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Fees []FeeComponent `json:"fees,omitempty"`

	// exchangeRate is the rate the provider applied between amount and billingAmount, as an exact decimal.
	// +optional
	// +kubebuilder:validation:MinLength=1
	ExchangeRate Decimal `json:"exchangeRate,omitempty"`

	// providerFields are provider IDs and values of the transaction besides providerTransactionID, kept verbatim
	// for reconciliation (e.g. UPay thirdOrderNo and trace, Prepaidify orderNo), keyed by the provider's field name.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 64 && self[k].size() <= 256)",message="providerFields keys are at most 64 and values at most 256 characters"
	ProviderFields map[string]string `json:"providerFields,omitempty"`

	// merchant where the card was used.
	// +optional
	Merchant *Merchant `json:"merchant,omitempty"`

	// channel is how the card was used, e.g. ECOMMERCE or POS.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:MinLength=1
	Channel string `json:"channel,omitempty"`

	// description the provider gave.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:MinLength=1
	Description string `json:"description,omitempty"`

	// failureReason the provider gave for a declined or failed transaction.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:MinLength=1
	FailureReason string `json:"failureReason,omitempty"`

	// originalTransactionID links a refund, reversal or correction to the transaction it amends.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:MinLength=1
	OriginalTransactionID string `json:"originalTransactionID,omitempty"`

	// authorizationID is the provider's authorization ID, when it sends one.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:MinLength=1
	AuthorizationID string `json:"authorizationID,omitempty"`

	// crypto is the crypto payment behind a card order.
	// +optional
	Crypto *CryptoPayment `json:"crypto,omitempty"`

	// occurredAt is when the provider says the transaction happened (UTC).
	// +optional
	OccurredAt *metav1.Time `json:"occurredAt,omitempty"`

	// observedAt is the provider time of the event that set the current phase; an older event never overwrites it.
	// +optional
	ObservedAt *metav1.MicroTime `json:"observedAt,omitempty"`

	// authorization is the decision this operator made, when it decided the authorization.
	// +optional
	Authorization *AuthorizationDecision `json:"authorization,omitempty"`

	// lastEvent is the provider event that last changed this transaction.
	// +optional
	LastEvent *ProviderEvent `json:"lastEvent,omitempty"`

	// stateSequence increases by one with every change of the observed state; projection delivers it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	StateSequence int64 `json:"stateSequence,omitempty"`

	// countedAt is when the transaction was added to its card's running totals (status.totals); retention
	// deletes only counted transactions, so the totals never lose one.
	// +optional
	CountedAt *metav1.Time `json:"countedAt,omitempty"`

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

// CardTransaction is one provider transaction on a card, owned by its Card.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cptxn;txn,categories=cardplane
// +kubebuilder:printcolumn:name="Card",type=string,JSONPath=`.spec.cardRef.name`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.status.type`
// +kubebuilder:printcolumn:name="Amount",type=string,JSONPath=`.status.amount.value`
// +kubebuilder:printcolumn:name="Currency",type=string,JSONPath=`.status.amount.currency`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Decision",type=string,JSONPath=`.status.authorization.outcome`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CardTransaction struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the transaction's immutable identity.
	// +required
	Spec CardTransactionSpec `json:"spec,omitzero"`

	// status is the transaction as observed from its provider's callbacks.
	// +optional
	Status CardTransactionStatus `json:"status,omitempty"`
}

// CardTransactionList is a list of CardTransactions.
// +kubebuilder:object:root=true
type CardTransactionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CardTransaction `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &CardTransaction{}, &CardTransactionList{})
}
