package v1alpha1

// The names cardplane gives meaning to, in one place: labels, annotations, data keys, condition types and
// reasons, and the reason codes of refused callbacks and of decisions. They are part of the API: users select on
// them, alert on them and write them into their own objects.

// Labels.
const (
	// LabelProvider, LabelEndpoint and LabelCard are put by the receiver on the objects it creates, so they can be
	// selected.
	LabelProvider = "cards.cardplane.io/provider"
	LabelEndpoint = "cards.cardplane.io/endpoint"
	LabelCard     = "cards.cardplane.io/card"
	// LabelHolder is a hash of the provider's card holder ID, so holder-level facts (KYC) find their cards
	// without putting the ID itself in a label.
	LabelHolder = "cards.cardplane.io/holder"
	// LabelRuleSet (value "true") marks a ConfigMap as an authorization rule set holding RuleSetKey.
	LabelRuleSet = "cards.cardplane.io/rule-set"
	// AnnotationRevision on a rule-set ConfigMap names its source revision (a Git commit), which every decision
	// of the set records (status.authorization.ruleSetRevision, the decision log). GitOps tools set it, e.g. Argo
	// CD's kustomize commonAnnotations with ${ARGOCD_APP_REVISION}.
	AnnotationRevision = "cards.cardplane.io/revision"
	// AnnotationRuleSetState on a rule-set ConfigMap is written by cardplane: RuleSetInForce or RuleSetInvalid,
	// so GitOps tools and kubectl show whether the version in Git is the one deciding.
	AnnotationRuleSetState = "cards.cardplane.io/rule-set-state"
	// AnnotationRuleSetError holds, while the state is RuleSetInvalid, the compile error (line-numbered) and
	// what is in force instead.
	AnnotationRuleSetError = "cards.cardplane.io/rule-set-error"
	// RuleSetInForce and RuleSetInvalid are the values of AnnotationRuleSetState.
	RuleSetInForce = "InForce"
	RuleSetInvalid = "Invalid"
	// LabelCredentials (value "true") marks a Secret an endpoint may name (credentialsRef, a destination's
	// secretRef). cardplane reads no other Secret: naming a Secret in an endpoint does not make its key sign
	// anything unless whoever owns the Secret labelled it.
	LabelCredentials = "cards.cardplane.io/credentials"
)

// Annotations.
const (
	// AnnotationRedeliver asks the reconcilers to deliver an object's current state again to every destination.
	AnnotationRedeliver = "cards.cardplane.io/redeliver"
	// AnnotationReplayFrom on a CardEventSink (an RFC 3339 time) queues again, for that sink only, the current
	// state of every matching object whose last event was received at or after it. It is removed once queued.
	AnnotationReplayFrom = "cards.cardplane.io/replay-from"
	// AnnotationResendDeadLetters on a CardEventSink (any value) queues its status.deadLetters again and
	// clears the list. It is removed once queued.
	AnnotationResendDeadLetters = "cards.cardplane.io/resend-dead-letters"
	// AnnotationCounted marks a CardTransaction whose amounts are in its card's running totals; only counted
	// transactions are deleted by retention, so the totals never lose one.
	AnnotationCounted = "cards.cardplane.io/counted"
	// AnnotationEndpoint records which endpoint ("namespace/name") wrote a CardTransaction (its spec names only
	// its card).
	AnnotationEndpoint = "cards.cardplane.io/endpoint"
	// AnnotationAcceptEndpointsFrom on a Namespace lists the namespaces whose endpoints may write cards into it
	// (spec.targetNamespace), separated by commas, or "*" for every namespace. Without it, only endpoints of
	// the namespace itself write there.
	AnnotationAcceptEndpointsFrom = "cards.cardplane.io/accept-endpoints-from"
)

// Data keys.
const (
	// RuleSetKey is the ConfigMap data key that holds a rule set.
	RuleSetKey = "rules.yaml"
	// SecretKeySigningKey is the provider's signing secret (UPay, Tevau, BananaTech, and the Standard Webhooks
	// "whsec_..." secret of the generic adapter).
	SecretKeySigningKey = "signingKey"
	// SecretKeyEncryptionKey is BananaTech's AES key material; when absent, signingKey is used.
	SecretKeyEncryptionKey = "encryptionKey"
	// SecretKeyURLToken is the token a provider that signs nothing must put in the URL path.
	SecretKeyURLToken = "urlToken"
	// SecretKeyDestinationSecret is the Standard Webhooks secret a destination's deliveries are signed with.
	SecretKeyDestinationSecret = "webhookSecret"
)

// Condition types.
const (
	// ConditionReady is True when an object is fully working.
	ConditionReady = "Ready"
	// ConditionDestinationsReady is True on a WebhookEndpoint when every destination's transport (signing
	// key, headers, CA, client certificate, proxy) can be built. It is apart from Ready, which is about
	// accepting callbacks: a destination that cannot be reached never stops ingestion; its states wait.
	ConditionDestinationsReady = "DestinationsReady"
	// ConditionProjectionFailed is True when an update could not be delivered within the retry budget.
	ConditionProjectionFailed = "ProjectionFailed"
	// ConditionFrozen and ConditionClosed are True on a Card in those phases.
	ConditionFrozen = "Frozen"
	ConditionClosed = "Closed"
)

// Reasons of a WebhookEndpoint's Ready condition.
const (
	ReasonAccepting        = "Accepting"
	ReasonSecretNotFound   = "SecretNotFound"
	ReasonSecretKeyMissing = "SecretKeyMissing"
	ReasonInvalidConfig    = "InvalidConfig"
	ReasonSuspended        = "Suspended"
	// ReasonSecretNotLabelled: a Secret the endpoint names lacks the label cards.cardplane.io/credentials=true.
	ReasonSecretNotLabelled = "SecretNotLabelled"
	// ReasonTargetNamespaceNotPermitted: spec.targetNamespace is missing, terminating, or does not list the
	// endpoint's namespace in its cards.cardplane.io/accept-endpoints-from annotation.
	ReasonTargetNamespaceNotPermitted = "TargetNamespaceNotPermitted"
)

// Reasons a callback is refused for: the JSON answer's reason, status.counters.rejected and the result label of
// cardplane_webhook_requests_total.
const (
	ReasonNotFound    = "NotFound"
	ReasonNotReady    = "NotReady"
	ReasonTooLarge    = "TooLarge"
	ReasonRateLimited = "RateLimited"
	// ReasonSourceRateLimited: the source address sent too many refused requests recently.
	ReasonSourceRateLimited = "SourceRateLimited"
	ReasonSourceNotAllowed  = "SourceNotAllowed"
	ReasonInvalidURLToken   = "InvalidURLToken"
	ReasonStoreFailed       = "StoreFailed"
	ReasonMalformed         = "Malformed"
	ReasonInvalidSignature  = "InvalidSignature"
	ReasonReplay            = "Replay"
	ReasonStaleTimestamp    = "StaleTimestamp"
	ReasonDecryptFailed     = "DecryptFailed"
)

// Reasons of decisions cardplane makes itself (rules name their own), in status.authorization.reason and the
// AuthorizationReview response.
const (
	// DecisionNoRuleSet: no rule set governs the card.
	DecisionNoRuleSet = "NO_RULE_SET"
	// DecisionRuleSetInvalid: a rule set that would govern the card does not compile and no good version of it
	// is in force on this replica (a new set, or a replica started since); what it meant to allow is unknown.
	DecisionRuleSetInvalid = "RULE_SET_INVALID"
	// DecisionStandInTimeout: the budget ran out; the rule set's stand-in decision answered.
	DecisionStandInTimeout = "STAND_IN_TIMEOUT"
	// DecisionLedgerUnavailable: the spend ledger could not be written; the stand-in decision answered.
	DecisionLedgerUnavailable = "STAND_IN_LEDGER_UNAVAILABLE"
	// DecisionCardUnavailable: the card could not be read or created within the budget.
	DecisionCardUnavailable = "STAND_IN_CARD_UNAVAILABLE"
	// DecisionLedgerFull: counting the approval would need more spend windows than the ledger holds (a card used
	// in many currencies at once); a current window is never dropped, since its limit would start over.
	DecisionLedgerFull = "LEDGER_FULL"
	// DecisionAlreadyApproved answers a retried authorization that the ledger already counts.
	DecisionAlreadyApproved = "ALREADY_APPROVED"
	// DecisionUnknownCard: an AuthorizationReview names a card cardplane does not know.
	DecisionUnknownCard = "UNKNOWN_CARD"
	// DecisionCurrencyMismatch: an amount or spend rule in another currency than the transaction's declined.
	DecisionCurrencyMismatch = "CURRENCY_MISMATCH"
	// DecisionRuleError: a CEL condition failed at run time (a missing map key, the cost limit); fail closed.
	DecisionRuleError = "RULE_ERROR"
	// DecisionInvalidAmount: the amount is not a non-negative decimal in an ISO 4217 currency.
	DecisionInvalidAmount = "INVALID_AMOUNT"
	// DecisionDefaultDecline: no enforce rule declined and the set's defaultDecision is decline.
	DecisionDefaultDecline = "DEFAULT_DECLINE"
	// DecisionCardStatusUnknown: the card's last provider status is one no adapter knows (phase Unknown), so
	// whether the provider still considers the card usable is unknown; declined before any rule runs.
	DecisionCardStatusUnknown = "CARD_STATUS_UNKNOWN"
)

// Reasons of the Kubernetes Events cardplane records.
const (
	EventRuleSetInvalid   = "RuleSetInvalid"
	EventRuleSetLoaded    = "RuleSetLoaded"
	EventRuleSetRemoved   = "RuleSetRemoved"
	EventProjectionFailed = "ProjectionFailed"
	EventUnknownEvent     = "UnknownEvent"
	// EventFailureWithoutHolder is a failure the provider reported that names neither a card nor a holder.
	EventFailureWithoutHolder = "FailureWithoutHolder"
	// EventUnknownProviderStatus is a status value no adapter knows, stored verbatim with the phase Unknown.
	EventUnknownProviderStatus = "UnknownProviderStatus"
	EventDeadLettered          = "DeadLettered"
)
