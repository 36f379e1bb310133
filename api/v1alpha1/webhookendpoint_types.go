package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// WebhookEndpointSpec configures one provider integration.
// +kubebuilder:validation:XValidation:rule="!has(self.tevau) || self.provider == 'tevau'",message="tevau options are only valid with provider tevau"
// +kubebuilder:validation:XValidation:rule="!has(self.bananatech) || self.provider == 'bananatech'",message="bananatech options are only valid with provider bananatech"
// +kubebuilder:validation:XValidation:rule="!has(self.upay) || self.provider == 'upay'",message="upay options are only valid with provider upay"
// +kubebuilder:validation:XValidation:rule="!has(self.alchemypay) || self.provider == 'alchemypay'",message="alchemypay options are only valid with provider alchemypay"
// +kubebuilder:validation:XValidation:rule="self.provider != 'generic' || has(self.generic)",message="provider generic needs a generic mapping"
// +kubebuilder:validation:XValidation:rule="!has(self.generic) || self.provider == 'generic'",message="generic options are only valid with provider generic"
// +kubebuilder:validation:XValidation:rule="!(self.provider in ['upay','tevau','bananatech']) || has(self.credentialsRef)",message="providers that sign their callbacks need credentialsRef"
// +kubebuilder:validation:XValidation:rule="!(self.provider in ['prepaidify','alchemypay']) || (has(self.verification) && ((has(self.verification.sourceCIDRs) && size(self.verification.sourceCIDRs) > 0) || (has(self.verification.requireURLToken) && self.verification.requireURLToken) || (has(self.verification.allowUnauthenticated) && self.verification.allowUnauthenticated)))",message="prepaidify and alchemypay sign nothing: set verification.sourceCIDRs, verification.requireURLToken, or (for development only) verification.allowUnauthenticated"
type WebhookEndpointSpec struct {
	// provider selects the adapter that verifies and decodes the callbacks. It cannot change:
	// the cards of an endpoint are identified by it.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="provider is immutable"
	Provider Provider `json:"provider,omitempty"`

	// suspend stops accepting callbacks (they are answered 503, so providers retry later).
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// credentialsRef names a Secret in this namespace holding the provider's credentials, under the keys
	// signingKey, encryptionKey (BananaTech; defaults to signingKey) and urlToken.
	// +optional
	CredentialsRef *LocalObjectReference `json:"credentialsRef,omitempty"`

	// targetNamespace is where Cards and CardTransactions are written; defaults to the endpoint's namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MinLength=1
	TargetNamespace string `json:"targetNamespace,omitempty"`

	// cardLabels are put on every Card this endpoint writes, when it creates the card and on any later write that
	// finds them missing or changed, so rule-set selectors govern a card from its first authorization (cards
	// are created by callbacks: nobody labels them before). Keys under cards.cardplane.io/ are cardplane's own.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 253)",message="cardLabels keys are label keys, at most 253 characters"
	// +kubebuilder:validation:XValidation:rule="!self.exists(k, k.startsWith('cards.cardplane.io/'))",message="cardLabels keys under cards.cardplane.io/ are reserved for cardplane"
	CardLabels map[string]LabelValue `json:"cardLabels,omitempty"`

	// verification tunes how callbacks are authenticated.
	// +optional
	Verification *Verification `json:"verification,omitempty"`

	// upay holds options of the upay adapter.
	// +optional
	UPay *UPayOptions `json:"upay,omitempty"`

	// tevau holds options of the tevau adapter, whose signature scheme is not fully documented.
	// +optional
	Tevau *TevauOptions `json:"tevau,omitempty"`

	// bananatech holds options of the bananatech adapter.
	// +optional
	BananaTech *BananaTechOptions `json:"bananatech,omitempty"`

	// alchemypay holds options of the alchemypay adapter.
	// +optional
	AlchemyPay *AlchemyPayOptions `json:"alchemypay,omitempty"`

	// generic maps the JSON of a provider without a built-in adapter to cardplane events.
	// +optional
	Generic *GenericMapping `json:"generic,omitempty"`

	// rateLimit caps the callbacks accepted for this endpoint; excess requests are answered 429.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`

	// destinations are the external systems card and transaction updates are projected to.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Destinations []Destination `json:"destinations,omitempty"`

	// destinationPolicy says which non-public addresses the destinations may reach. Without it they reach
	// public addresses only.
	// +optional
	DestinationPolicy *DestinationPolicy `json:"destinationPolicy,omitempty"`

	// allowPrivateDestinations is removed: it opened every address, loopback and cloud metadata included. It
	// is refused; list the ranges destinations need in destinationPolicy.allowedCIDRs instead. It stays in the
	// schema for one release so that an endpoint stored with it is reported (Ready False, InvalidConfig)
	// rather than silently losing its private destinations.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self",message="allowPrivateDestinations was removed: list the private ranges your destinations need in spec.destinationPolicy.allowedCIDRs"
	RemovedAllowPrivateDestinations bool `json:"allowPrivateDestinations,omitempty"`

	// transactionRetention is how long settled or failed CardTransactions are kept (default 90 days);
	// the Card keeps running totals.
	// +optional
	TransactionRetention *metav1.Duration `json:"transactionRetention,omitempty"`
}

// DestinationPolicy opens non-public addresses to an endpoint's destinations.
type DestinationPolicy struct {
	// allowedCIDRs are the non-public ranges destinations may reach, e.g. the cluster's Service range for an
	// in-cluster ledger (10.96.0.0/12). Without them, every range of the IANA IPv4 and IPv6 special-purpose
	// address registries (private, shared, loopback, link-local, documentation, benchmarking, reserved,
	// multicast, NAT64, 6to4, unique-local, ...) is refused when connecting, after DNS resolution.
	// No entry opens loopback, 0.0.0.0/8, ::, link-local (169.254.0.0/16, fe80::/10) or cloud metadata
	// addresses (fd00:ec2::/32, 100.100.100.200, 168.63.129.16, 192.0.0.192): an entry inside one of them is
	// refused, and a wider entry that covers one opens only the rest of its range.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="allowedCIDRs must be CIDRs such as 10.96.0.0/12"
	// +kubebuilder:validation:XValidation:rule="!self.exists(c, isCIDR(c) && ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '100.100.100.200/32', '168.63.129.16/32', '192.0.0.192/32', '::/128', '::1/128', 'fe80::/10', 'fd00:ec2::/32'].exists(n, cidr(n).containsCIDR(c)))",message="allowedCIDRs cannot open loopback, link-local or cloud metadata addresses (127.0.0.0/8, ::1, 0.0.0.0/8, 169.254.0.0/16, fe80::/10, fd00:ec2::/32, 100.100.100.200, 168.63.129.16, 192.0.0.192)"
	AllowedCIDRs []string `json:"allowedCIDRs,omitempty"`
}

// LabelValue is a Kubernetes label value.
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:Pattern=`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`
type LabelValue string

// Verification tunes how callbacks are authenticated.
type Verification struct {
	// timestampTolerance is how far a signed timestamp may be from the receiver's clock (default 5m).
	// Requests outside it are answered 401 as replays.
	// +optional
	TimestampTolerance *metav1.Duration `json:"timestampTolerance,omitempty"`

	// sourceCIDRs are, when set, the only client addresses accepted (403 SourceNotAllowed otherwise).
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="sourceCIDRs must be CIDRs such as 203.0.113.0/24"
	// +listType=set
	SourceCIDRs []string `json:"sourceCIDRs,omitempty"`

	// trustedProxyCIDRs are the load balancers or ingress proxies whose X-Forwarded-For header is believed
	// when finding the client address for sourceCIDRs.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="trustedProxyCIDRs must be CIDRs such as 10.0.0.0/8"
	// +listType=set
	TrustedProxyCIDRs []string `json:"trustedProxyCIDRs,omitempty"`

	// requireURLToken makes the endpoint accept callbacks only on /webhooks/{namespace}/{name}/{urlToken},
	// with urlToken from the credentials Secret; for providers that sign nothing.
	// +optional
	RequireURLToken bool `json:"requireURLToken,omitempty"`

	// allowUnauthenticated accepts unsigned callbacks from any address. For development only.
	// +optional
	AllowUnauthenticated bool `json:"allowUnauthenticated,omitempty"`
}

// UPayOptions are options of the upay adapter.
type UPayOptions struct {
	// signatureEncoding of X-UPA-SIGN: Base64 (documented) or Hex.
	// +optional
	// +kubebuilder:validation:Enum=Base64;Hex
	// +default="Base64"
	SignatureEncoding string `json:"signatureEncoding,omitempty"`
}

// TevauOptions choose the variant of Tevau's signature, which its docs leave open.
type TevauOptions struct {
	// algorithm is HMACSHA256 (HMAC keyed with signingKey, the default) or SHA256 (plain hash of the
	// signed string with "&key=" and signingKey appended).
	// +optional
	// +kubebuilder:validation:Enum=HMACSHA256;SHA256
	// +default="HMACSHA256"
	Algorithm string `json:"algorithm,omitempty"`

	// includeHeaders merges the appId, timestamp and nonce headers into the signed fields (default true).
	// +optional
	IncludeHeaders *bool `json:"includeHeaders,omitempty"`

	// timestampFormat of the timestamp header: EpochMillis, EpochSeconds, or Compact (yyyyMMddHHmmss).
	// The default, Auto, tells them apart by length.
	// +optional
	// +kubebuilder:validation:Enum=Auto;EpochMillis;EpochSeconds;Compact
	// +default="Auto"
	TimestampFormat string `json:"timestampFormat,omitempty"`

	// timeZone of Compact timestamps, as an IANA name (default UTC).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:MinLength=1
	TimeZone string `json:"timeZone,omitempty"`
}

// BananaTechOptions are options of the bananatech adapter.
type BananaTechOptions struct {
	// aesKey says how the AES key is made from encryptionKey (or signingKey), which BananaTech's docs leave open:
	// Raw (its bytes, 16/24/32 long), Hex, Base64, or SHA256 (the SHA-256 of its bytes, AES-256). Default Raw.
	// +optional
	// +kubebuilder:validation:Enum=Raw;Hex;Base64;SHA256
	// +default="Raw"
	AESKey string `json:"aesKey,omitempty"`
}

// AlchemyPayOptions are options of the alchemypay adapter.
type AlchemyPayOptions struct {
	// timeZone of the local date-times Alchemy Pay sends (orderTime), as an IANA name (e.g. Asia/Singapore)
	// or a fixed offset (+08:00). The default, +08:00, is what Alchemy Pay's own example shows: its orderNo
	// embeds the epoch 1723187469 (07:11:09 UTC) and its orderTime reads 15:11:09.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:MinLength=1
	TimeZone string `json:"timeZone,omitempty"`
}

// GenericMapping connects a provider without a built-in adapter: callbacks are verified as Standard Webhooks
// and mapped to cardplane events with CEL expressions over `body` (the parsed JSON) and `headers`
// (lower-case names to first values).
type GenericMapping struct {
	// signature is StandardWebhooks (webhook-id, webhook-timestamp, webhook-signature headers; the default)
	// or None (then use verification.sourceCIDRs or requireURLToken).
	// +optional
	// +kubebuilder:validation:Enum=StandardWebhooks;None
	// +default="StandardWebhooks"
	Signature string `json:"signature,omitempty"`

	// eventType is a CEL expression giving the event's type, e.g. `body.type`.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	EventType string `json:"eventType,omitempty"`

	// eventID is a CEL expression giving the event's idempotency key (default: the webhook-id header).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:MinLength=1
	EventID string `json:"eventID,omitempty"`

	// occurredAt is a CEL expression giving the event time: a timestamp, epoch seconds or milliseconds,
	// or an RFC 3339 string (default: the webhook-timestamp header).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:MinLength=1
	OccurredAt string `json:"occurredAt,omitempty"`

	// events map event types to cardplane events; an event type may appear in one rule only.
	// Verified callbacks that match no rule are acknowledged and counted as unknown.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Events []GenericEventRule `json:"events,omitempty"`
}

// GenericEventKind is the cardplane event a generic rule produces.
// +kubebuilder:validation:Enum=CardLifecycle;Balance;Transaction;KYC;Logistics;Ignore
type GenericEventKind string

// GenericEventRule maps matching callbacks to one kind of cardplane event.
// +kubebuilder:validation:XValidation:rule="self.fields.all(k, k in ['cardID','phase','providerStatus','reason','cardType','bin','last4','expiryMonth','expiryYear','holderID','balance','balanceMinor','currency','transactionID','transactionType','transactionPhase','amount','amountMinor','direction','billingAmount','billingCurrency','fee','feeMinor','merchantName','mcc','merchantCountry','channel','description','originalTransactionID','kycState','logisticsState','carrier','trackingNumber'])",message="unknown field name; see docs/providers.md for the field names of a generic mapping"
// +kubebuilder:validation:XValidation:rule="self.kind == 'Ignore' || 'cardID' in self.fields",message="fields.cardID is required unless kind is Ignore"
type GenericEventRule struct {
	// eventTypes are the event types (as given by eventType) this rule applies to.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=128
	// +listType=set
	EventTypes []string `json:"eventTypes,omitempty"`

	// kind of cardplane event produced.
	// +required
	Kind GenericEventKind `json:"kind,omitempty"`

	// fields are CEL expressions, by cardplane field name (cardID, phase, amount, currency, transactionID, ...).
	// amount, balance and fee take decimal strings or integers in major units; amountMinor, balanceMinor and
	// feeMinor take integers in the currency's minor units (cents).
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Fields map[string]string `json:"fields,omitempty"`
}

// RateLimit is a token bucket.
type RateLimit struct {
	// requestsPerSecond is the sustained rate.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	RequestsPerSecond int32 `json:"requestsPerSecond,omitempty"`

	// burst is how many requests may arrive at once (default: requestsPerSecond).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	Burst int32 `json:"burst,omitempty"`
}

// DestinationEventType is a kind of update delivered to destinations.
// +kubebuilder:validation:Enum=card.updated;transaction.updated;authorization.decided;challenge.otp
type DestinationEventType string

// Destination event types.
const (
	EventCardUpdated        DestinationEventType = "card.updated"
	EventTransactionUpdated DestinationEventType = "transaction.updated"
	// EventAuthorizationDecided is a CardTransaction state that carries this operator's real-time
	// authorization decision (status.authorization). A destination or sink that lists it receives those states
	// typed authorization.decided, even when it lists transaction.updated too.
	EventAuthorizationDecided DestinationEventType = "authorization.decided"
	// EventChallengeOTP carries one-time codes (3DS, activation, verification). It is delivered only to
	// destinations that list it, once, from memory; the codes are never written to the API server.
	EventChallengeOTP DestinationEventType = "challenge.otp"
)

// Destination is an external HTTP system that receives signed updates.
type Destination struct {
	// name identifies the destination in delivery cursors and status.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name,omitempty"`

	// url receives POST requests signed per the Standard Webhooks spec.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http','https']",message="url must be an http or https URL"
	// +kubebuilder:validation:MinLength=1
	URL string `json:"url,omitempty"`

	// eventTypes filters what is delivered; empty means card.updated and transaction.updated.
	// challenge.otp is delivered only when listed.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +listType=set
	EventTypes []DestinationEventType `json:"eventTypes,omitempty"`

	// secretRef names a Secret in the endpoint's namespace whose webhookSecret key ("whsec_..." or raw)
	// signs the deliveries.
	// +required
	SecretRef LocalObjectReference `json:"secretRef,omitzero"`

	// timeout of one delivery request (default 10s, at most 30s).
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// maxInFlight is how many deliveries to this destination may be outstanding at once (default 8). Each
	// destination has its own queue: a slow or failing one delays only itself.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	MaxInFlight int32 `json:"maxInFlight,omitempty"`

	// retry is the retry policy of failed deliveries.
	// +optional
	Retry *RetryPolicy `json:"retry,omitempty"`

	// http authenticates to the destination and routes to it: headers and a bearer token from Secrets, a
	// private CA, a client certificate (mTLS), a proxy. Its Secrets are the endpoint's namespace's, labelled
	// cards.cardplane.io/credentials=true; a rotated one is picked up within seconds, without a restart.
	// +optional
	HTTP *HTTPSinkOptions `json:"http,omitempty"`
}

// RetryPolicy is exponential backoff with jitter.
type RetryPolicy struct {
	// maxAttempts before the object is marked ProjectionFailed (default 12).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxAttempts int32 `json:"maxAttempts,omitempty"`

	// minBackoff is the first retry delay (default 1s).
	// +optional
	MinBackoff *metav1.Duration `json:"minBackoff,omitempty"`

	// maxBackoff caps the retry delay (default 5m).
	// +optional
	MaxBackoff *metav1.Duration `json:"maxBackoff,omitempty"`
}

// ReasonCount counts rejected callbacks by reason.
type ReasonCount struct {
	// reason is why callbacks were refused, e.g. InvalidSignature, StaleTimestamp, Malformed, TooLarge, RateLimited, SourceNotAllowed, NotReady.
	// +required
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:MinLength=1
	Reason string `json:"reason,omitempty"`

	// count of callbacks rejected for this reason.
	// +required
	// +kubebuilder:validation:Minimum=1
	Count int64 `json:"count,omitempty"`
}

// EndpointCounters count callbacks since the endpoint was created.
type EndpointCounters struct {
	// received counts every callback that reached this endpoint.
	// +optional
	Received int64 `json:"received,omitempty"`

	// applied counts callbacks whose facts were written.
	// +optional
	Applied int64 `json:"applied,omitempty"`

	// duplicates counts callbacks that changed nothing because their facts were already known.
	// +optional
	Duplicates int64 `json:"duplicates,omitempty"`

	// unknownEvents counts verified callbacks of event types no adapter knows (acknowledged, not applied).
	// +optional
	UnknownEvents int64 `json:"unknownEvents,omitempty"`

	// rejected counts refused callbacks by reason.
	// +optional
	// +listType=map
	// +listMapKey=reason
	// +kubebuilder:validation:MaxItems=32
	Rejected []ReasonCount `json:"rejected,omitempty"`
}

// DestinationState is how deliveries to a destination are going.
// +kubebuilder:validation:Enum=Healthy;Retrying;Unreachable
type DestinationState string

// Destination states.
const (
	// DestinationHealthy: the last delivery succeeded.
	DestinationHealthy DestinationState = "Healthy"
	// DestinationRetrying: recent deliveries failed and are being retried.
	DestinationRetrying DestinationState = "Retrying"
	// DestinationUnreachable: deliveries failed in a row; the circuit breaker holds them back and probes the
	// destination now and then, so nothing is given up while it is down.
	DestinationUnreachable DestinationState = "Unreachable"
)

// DeliveryCheckpoint is how far a destination has been served, per kind: every change of a Card (or
// CardTransaction) with a resourceVersion up to the one given was delivered, or given up after its retries.
// A controller that starts delivers what changed after it, so no per-object cursor is written.
type DeliveryCheckpoint struct {
	// cards is the Card resourceVersion delivered through.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:MinLength=1
	Cards string `json:"cards,omitempty"`

	// transactions is the CardTransaction resourceVersion delivered through.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:MinLength=1
	Transactions string `json:"transactions,omitempty"`
}

// DestinationStatus is the delivery state of one destination, written by the controller within two seconds
// of a change of state, and about every 30 seconds while only its progress changes.
type DestinationStatus struct {
	// name of the destination.
	// +required
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name,omitempty"`

	// state is Healthy, Retrying or Unreachable.
	// +optional
	State DestinationState `json:"state,omitempty"`

	// pending counts the objects whose latest state is waiting to be delivered.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Pending int64 `json:"pending,omitempty"`

	// oldestPendingTime is when the oldest waiting state was written: the destination's lag.
	// +optional
	OldestPendingTime *metav1.Time `json:"oldestPendingTime,omitempty"`

	// checkpoint is how far the destination has been served.
	// +optional
	Checkpoint *DeliveryCheckpoint `json:"checkpoint,omitempty"`

	// lastDeliveryTime is when a delivery last succeeded.
	// +optional
	LastDeliveryTime *metav1.Time `json:"lastDeliveryTime,omitempty"`

	// lastFailureTime is when a delivery last failed.
	// +optional
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`

	// lastError is the error of the last failed delivery.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:MinLength=1
	LastError string `json:"lastError,omitempty"`
}

// WebhookEndpointStatus is the observed state of an endpoint.
type WebhookEndpointStatus struct {
	// conditions are Ready (callbacks are accepted; reasons such as SecretNotFound, InvalidConfig, Suspended)
	// and, with destinations, DestinationsReady (every destination's transport can be built; a False one
	// holds its states back but does not stop ingestion).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the reconciler last validated.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// receivePath is the path providers must call, e.g. /webhooks/payments/upay-main.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:MinLength=1
	ReceivePath string `json:"receivePath,omitempty"`

	// counters of callbacks, updated in batches (about once a second), not per request.
	// +optional
	Counters EndpointCounters `json:"counters,omitempty"`

	// lastEventTime is when the last callback was accepted.
	// +optional
	LastEventTime *metav1.Time `json:"lastEventTime,omitempty"`

	// destinations is the delivery state per destination.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Destinations []DestinationStatus `json:"destinations,omitempty"`

	// destinationHealth sums up the destinations: Healthy when every one is, else the worst state.
	// +optional
	DestinationHealth DestinationState `json:"destinationHealth,omitempty"`
}

// WebhookEndpoint is one provider integration: where its callbacks arrive, how they are verified,
// where its cards land, and where their updates are projected.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=whep,categories=cardplane
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Received",type=integer,JSONPath=`.status.counters.received`
// +kubebuilder:printcolumn:name="Destinations",type=string,JSONPath=`.status.destinationHealth`
// +kubebuilder:printcolumn:name="Path",type=string,JSONPath=`.status.receivePath`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WebhookEndpoint struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec configures the provider integration.
	// +required
	Spec WebhookEndpointSpec `json:"spec,omitzero"`

	// status is the endpoint as the controllers and receivers observe it.
	// +optional
	Status WebhookEndpointStatus `json:"status,omitempty"`
}

// WebhookEndpointList is a list of WebhookEndpoints.
// +kubebuilder:object:root=true
type WebhookEndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WebhookEndpoint `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &WebhookEndpoint{}, &WebhookEndpointList{})
}
