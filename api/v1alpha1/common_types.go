package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Provider names a built-in provider adapter.
// +kubebuilder:validation:Enum=upay;tevau;bananatech;prepaidify;alchemypay;generic
type Provider string

// Built-in providers.
const (
	ProviderUPay       Provider = "upay"
	ProviderTevau      Provider = "tevau"
	ProviderBananaTech Provider = "bananatech"
	ProviderPrepaidify Provider = "prepaidify"
	ProviderAlchemyPay Provider = "alchemypay"
	ProviderGeneric    Provider = "generic"
)

// Decimal is an exact decimal number written as a string, e.g. "12.50" or "-0.72122094".
// Money is never a float: amounts keep the precision the provider sent.
// +kubebuilder:validation:Pattern=`^-?[0-9]{1,18}(\.[0-9]{1,18})?$`
// +kubebuilder:validation:MaxLength=40
type Decimal string

// Money is an exact amount in an ISO 4217 currency.
type Money struct {
	// value is the exact decimal amount in major units ("12.50" is twelve and a half).
	// +required
	// +kubebuilder:validation:MinLength=1
	Value Decimal `json:"value,omitempty"`

	// currency is the ISO 4217 alphabetic code, e.g. USD.
	// +required
	// +kubebuilder:validation:Pattern=`^[A-Z]{3}$`
	// +kubebuilder:validation:MinLength=1
	Currency string `json:"currency,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// name of the referent.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`
}

// NamespacedObjectReference names an object, possibly in another namespace.
type NamespacedObjectReference struct {
	// namespace of the referent.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`

	// name of the referent.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`
}

// ProviderEvent records the provider event that last changed an object.
type ProviderEvent struct {
	// type is the provider's event type, e.g. CSC_STATUS_CHANGE.
	// +required
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:MinLength=1
	Type string `json:"type,omitempty"`

	// id is the provider's idempotency key for the event (orderNo, eventId, ...), when it sends one.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:MinLength=1
	ID string `json:"id,omitempty"`

	// time is when the provider says the event happened (UTC).
	// +optional
	Time *metav1.MicroTime `json:"time,omitempty"`

	// receivedAt is when the receiver accepted the callback (UTC).
	// +optional
	ReceivedAt *metav1.Time `json:"receivedAt,omitempty"`
}

// DeliveryCursor is how far the updates of one object were delivered to one destination, as earlier releases
// kept it in the object's status; no longer written (see DeliveryCheckpoint).
type DeliveryCursor struct {
	// destination is the name of the destination on the WebhookEndpoint.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Destination string `json:"destination,omitempty"`

	// deliveredSequence is the last stateSequence the destination acknowledged.
	// +optional
	// +kubebuilder:validation:Minimum=0
	DeliveredSequence int64 `json:"deliveredSequence,omitempty"`

	// attemptedSequence is the stateSequence the failed attempts were for; a newer state starts a new budget.
	// +optional
	// +kubebuilder:validation:Minimum=0
	AttemptedSequence int64 `json:"attemptedSequence,omitempty"`

	// attempts counts the failed attempts to deliver attemptedSequence.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Attempts int32 `json:"attempts,omitempty"`

	// lastAttemptTime is when delivery was last tried.
	// +optional
	LastAttemptTime *metav1.Time `json:"lastAttemptTime,omitempty"`

	// lastError is the error of the last failed attempt.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:MinLength=1
	LastError string `json:"lastError,omitempty"`
}
