package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// CardHolderSpec is the immutable identity of a card holder. Holders are created by the receiver when a
// provider first reports a fact about them, which is often before their first card (KYC precedes issuing).
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="holder identity (endpointRef, provider, providerHolderID) is immutable"
type CardHolderSpec struct {
	// endpointRef is the WebhookEndpoint whose callbacks describe this holder.
	// +required
	EndpointRef NamespacedObjectReference `json:"endpointRef,omitzero"`

	// provider is the card issuer's adapter.
	// +required
	Provider Provider `json:"provider,omitempty"`

	// providerHolderID is the provider's ID of the holder (user, customer or cardholder ID), verbatim.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	ProviderHolderID string `json:"providerHolderID,omitempty"`
}

// HolderFailure is a request about a holder that the provider reports failed, typically a card application
// refused before any card exists.
type HolderFailure struct {
	// kind is what failed, in the provider's words (its event type, e.g. CARD_APPLY_RESULT).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Kind string `json:"kind,omitempty"`

	// reason the provider gave, verbatim.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Reason string `json:"reason,omitempty"`

	// providerStatus is the provider's status value, verbatim.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	ProviderStatus string `json:"providerStatus,omitempty"`

	// requestID is the provider's ID of the failed request (request number, order number, card ID), verbatim.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	RequestID string `json:"requestID,omitempty"`

	// observedAt is the provider time of the event that reported the failure.
	// +optional
	ObservedAt *metav1.MicroTime `json:"observedAt,omitempty"`
}

// RiskAction is a risk-control action the provider took on the holder as a whole (e.g. freezing the account).
type RiskAction struct {
	// action in the provider's words, verbatim (e.g. FREEZE_ACCOUNT).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Action string `json:"action,omitempty"`

	// reason the provider gave, verbatim.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Reason string `json:"reason,omitempty"`

	// observedAt is the provider time of the event that reported the action.
	// +optional
	ObservedAt *metav1.MicroTime `json:"observedAt,omitempty"`
}

// CardHolderStatus is what the providers reported about a holder. It holds IDs and states only: no names,
// documents, addresses or other personal data.
type CardHolderStatus struct {
	// kyc is the holder's verification state; the receiver copies it to each of the holder's cards, where
	// rule sets read it as card.kyc.
	// +optional
	KYC *KYC `json:"kyc,omitempty"`

	// risk is the latest holder-level risk-control action.
	// +optional
	Risk *RiskAction `json:"risk,omitempty"`

	// failures are the latest failed requests about the holder, newest last.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Failures []HolderFailure `json:"failures,omitempty"`

	// cards are the names of the holder's Cards (in the same namespace).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	Cards []string `json:"cards,omitempty"`

	// cardCount is the number of cards in cards, for the printer column.
	// +optional
	// +kubebuilder:validation:Minimum=0
	CardCount int32 `json:"cardCount,omitempty"`

	// lastEvent is the provider event that last changed this holder.
	// +optional
	LastEvent *ProviderEvent `json:"lastEvent,omitempty"`
}

// CardHolder is a provider's card holder: the person or business cards are issued to, as far as the
// provider's callbacks describe it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cpholder,categories=cardplane
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider`
// +kubebuilder:printcolumn:name="Holder",type=string,JSONPath=`.spec.providerHolderID`
// +kubebuilder:printcolumn:name="KYC",type=string,JSONPath=`.status.kyc.state`
// +kubebuilder:printcolumn:name="Cards",type=integer,JSONPath=`.status.cardCount`
// +kubebuilder:printcolumn:name="Risk",type=string,JSONPath=`.status.risk.action`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CardHolder struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the holder's immutable identity.
	// +required
	Spec CardHolderSpec `json:"spec,omitzero"`

	// status is the holder as observed from its provider's callbacks.
	// +optional
	Status CardHolderStatus `json:"status,omitempty"`
}

// CardHolderList is a list of CardHolders.
// +kubebuilder:object:root=true
type CardHolderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CardHolder `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &CardHolder{}, &CardHolderList{})
}
