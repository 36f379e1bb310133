package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// CardEventSinkSpec is what an app team subscribes to and where it goes. It selects only cards of its own
// namespace: there is no field that names another.
// +kubebuilder:validation:XValidation:rule="!has(self.eventTypes) || !('challenge.otp' in self.eventTypes) || has(self.sink.webhook) || has(self.sink.cloudEvents)",message="challenge.otp (one-time codes) is delivered only to webhook and cloudEvents sinks, over https"
type CardEventSinkSpec struct {
	// selector picks the cards of this namespace whose events are delivered, by the card's labels; a
	// transaction follows its card's labels. Empty: every card of the namespace.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// eventTypes filters what is delivered: card.updated, transaction.updated, authorization.decided,
	// challenge.otp. Empty means card.updated and transaction.updated; challenge.otp is delivered only when listed.
	// +optional
	// +kubebuilder:validation:MaxItems=4
	// +listType=set
	EventTypes []DestinationEventType `json:"eventTypes,omitempty"`

	// filter is a CEL expression over `object` (the Card or CardTransaction as delivered) and `type` (the event
	// type); the state is delivered when it is true. It is compiled and cost-limited like rule sets; a filter
	// that does not compile makes the sink not Ready and nothing is delivered.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Filter string `json:"filter,omitempty"`

	// sink is where the events go.
	// +required
	Sink SinkSpec `json:"sink,omitzero"`

	// delivery is how hard to try, and where what could not be delivered goes.
	// +optional
	Delivery *DeliveryPolicy `json:"delivery,omitempty"`

	// backfill delivers, when the sink is created, the current state of every matching object already held;
	// otherwise only changes from then on are delivered.
	// +optional
	Backfill bool `json:"backfill,omitempty"`
}

// SinkSpec is one transport; exactly one of its fields is set.
// +kubebuilder:validation:MinProperties=1
// +kubebuilder:validation:XValidation:rule="[has(self.webhook), has(self.cloudEvents), has(self.kafka), has(self.nats)].filter(x, x).size() == 1",message="set exactly one of webhook, cloudEvents, kafka, nats"
type SinkSpec struct {
	// webhook POSTs each state signed per the Standard Webhooks spec.
	// +optional
	Webhook *WebhookSink `json:"webhook,omitempty"`

	// cloudEvents POSTs each state as a CloudEvents 1.0 event (type io.cardplane.card.updated, ...).
	// +optional
	CloudEvents *CloudEventsSink `json:"cloudEvents,omitempty"`

	// kafka produces each state to a topic, keyed by the card, with an idempotent producer.
	// +optional
	Kafka *KafkaSink `json:"kafka,omitempty"`

	// nats publishes each state to NATS JetStream, with a de-duplication ID per state.
	// +optional
	NATS *NATSSink `json:"nats,omitempty"`
}

// WebhookSink is an HTTP destination of Standard Webhooks-signed POSTs.
type WebhookSink struct {
	// url receives the POST requests.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http','https']",message="url must be an http or https URL"
	URL string `json:"url,omitempty"`

	// secretRef names a Secret of this namespace whose webhookSecret key ("whsec_..." or raw) signs the requests.
	// +required
	SecretRef LocalObjectReference `json:"secretRef,omitzero"`

	// http configures how the destination is reached and authenticated to.
	// +optional
	HTTP *HTTPSinkOptions `json:"http,omitempty"`
}

// CloudEventsMode is how a CloudEvent is carried over HTTP.
// +kubebuilder:validation:Enum=Binary;Structured
type CloudEventsMode string

// CloudEventsSink is an HTTP destination of CloudEvents 1.0 (a Knative Broker, an Argo Events webhook source).
type CloudEventsSink struct {
	// url receives the events.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http','https']",message="url must be an http or https URL"
	URL string `json:"url,omitempty"`

	// mode is Binary (attributes in ce-* headers, the object as the body; the default) or Structured (one
	// application/cloudevents+json document).
	// +optional
	Mode CloudEventsMode `json:"mode,omitempty"`

	// http configures how the destination is reached and authenticated to.
	// +optional
	HTTP *HTTPSinkOptions `json:"http,omitempty"`
}

// HTTPSinkOptions authenticate to an HTTP destination and route to it (a CardEventSink's webhook or
// cloudEvents sink, or a WebhookEndpoint's destination). Credentials come from Secrets of the referrer's own
// namespace only; a changed Secret is picked up without restarting.
type HTTPSinkOptions struct {
	// headers are added to every request, their values read from Secrets (an API key).
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	Headers []SecretHeader `json:"headers,omitempty"`

	// bearerTokenSecretRef is a Secret key whose value is sent as "Authorization: Bearer <token>".
	// +optional
	BearerTokenSecretRef *SecretKeyReference `json:"bearerTokenSecretRef,omitempty"`

	// tls verifies the destination with a private CA and presents a client certificate.
	// +optional
	TLS *SinkTLS `json:"tls,omitempty"`

	// proxyURL sends the requests through this proxy (http, https or socks5).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http','https','socks5','socks5h']",message="proxyURL must be an http, https or socks5 URL"
	ProxyURL string `json:"proxyURL,omitempty"`
}

// SecretHeader is one request header whose value is a Secret key.
type SecretHeader struct {
	// name of the header.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`
	Name string `json:"name,omitempty"`

	// valueFrom is the Secret key holding the value.
	// +required
	ValueFrom SecretKeyReference `json:"valueFrom,omitzero"`
}

// SecretKeyReference is one key of a Secret in the referrer's namespace.
type SecretKeyReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`

	// key within the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// SinkTLS is the TLS of a sink's connections.
type SinkTLS struct {
	// caSecretRef is a Secret key holding a PEM CA bundle the destination's certificate must chain to,
	// instead of the system roots.
	// +optional
	CASecretRef *SecretKeyReference `json:"caSecretRef,omitempty"`

	// clientCertificateSecretRef names a kubernetes.io/tls Secret (tls.crt, tls.key) presented as the client
	// certificate (mTLS).
	// +optional
	ClientCertificateSecretRef *LocalObjectReference `json:"clientCertificateSecretRef,omitempty"`

	// serverName is the name the destination's certificate is verified for (default: the host dialed).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ServerName string `json:"serverName,omitempty"`
}

// KafkaSink produces to one Kafka topic.
type KafkaSink struct {
	// brokers are the seed brokers, host:port.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	Brokers []string `json:"brokers,omitempty"`

	// topic the records are produced to; the record key is the card, so one card's states stay in order in
	// one partition.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=249
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]+$`
	Topic string `json:"topic,omitempty"`

	// tls connects with TLS (an empty object: TLS with the system roots).
	// +optional
	TLS *SinkTLS `json:"tls,omitempty"`

	// sasl authenticates the producer.
	// +optional
	SASL *KafkaSASL `json:"sasl,omitempty"`
}

// KafkaSASLMechanism is a SASL mechanism.
// +kubebuilder:validation:Enum=PLAIN;SCRAM-SHA-256;SCRAM-SHA-512
type KafkaSASLMechanism string

// KafkaSASL is SASL authentication to Kafka.
type KafkaSASL struct {
	// mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (PLAIN only with tls).
	// +required
	Mechanism KafkaSASLMechanism `json:"mechanism,omitempty"`

	// secretRef names a Secret of this namespace with username and password keys.
	// +required
	SecretRef LocalObjectReference `json:"secretRef,omitzero"`
}

// NATSSink publishes to NATS JetStream.
type NATSSink struct {
	// urls of the NATS servers (nats:// or tls://).
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=2048
	URLs []string `json:"urls,omitempty"`

	// subjectPrefix starts each subject; the event type follows (<prefix>.card.updated). A JetStream stream
	// must listen on it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=200
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`
	SubjectPrefix string `json:"subjectPrefix,omitempty"`

	// stream is, when set, the JetStream stream the publish must land in.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Stream string `json:"stream,omitempty"`

	// credentialsSecretRef names a Secret of this namespace holding one of: token; username and password;
	// nkey (a seed); creds (a .creds file).
	// +optional
	CredentialsSecretRef *LocalObjectReference `json:"credentialsSecretRef,omitempty"`

	// tls verifies the servers with a private CA and presents a client certificate.
	// +optional
	TLS *SinkTLS `json:"tls,omitempty"`
}

// DeliveryPolicy is how a sink's deliveries are tried.
type DeliveryPolicy struct {
	// timeout of one delivery attempt (default 10s, at most 30s).
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// maxInFlight is how many deliveries may be outstanding at once (default 8); one object's states are
	// never sent concurrently.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	MaxInFlight int32 `json:"maxInFlight,omitempty"`

	// retry is the retry budget of one state; once spent (or at once, for an answer that retrying cannot
	// change, such as a 400), the state is dead-lettered.
	// +optional
	Retry *RetryPolicy `json:"retry,omitempty"`

	// deadLetterSink receives the states given up on, with the reason (a Kafka topic, a NATS subject, an
	// HTTP endpoint). They are also listed in status.deadLetters either way.
	// +optional
	DeadLetterSink *SinkSpec `json:"deadLetterSink,omitempty"`
}

// DeadLetter is a state a sink gave up on.
type DeadLetter struct {
	// kind is Card or CardTransaction.
	// +required
	// +kubebuilder:validation:Enum=Card;CardTransaction
	Kind string `json:"kind,omitempty"`

	// name of the object, in the sink's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`

	// eventID is the ID the state was sent with (webhook-id, ce-id, Nats-Msg-Id).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	EventID string `json:"eventID,omitempty"`

	// stateSequence of the state given up on.
	// +optional
	// +kubebuilder:validation:Minimum=0
	StateSequence int64 `json:"stateSequence,omitempty"`

	// attempts made.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Attempts int32 `json:"attempts,omitempty"`

	// reason is the last error.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Reason string `json:"reason,omitempty"`

	// time it was given up.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`

	// deadLetterSink is what the dead-letter sink did with it: Delivered, Failed, or empty without one.
	// +optional
	// +kubebuilder:validation:Enum=Delivered;Failed
	DeadLetterSink string `json:"deadLetterSink,omitempty"`
}

// ReplayStatus is the last replay asked with the replay-from annotation.
type ReplayStatus struct {
	// from is the point in time replayed from: objects whose last event was received at or after it.
	// +optional
	From *metav1.Time `json:"from,omitempty"`

	// queued is how many objects were queued again.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Queued int64 `json:"queued,omitempty"`

	// time the replay was queued.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
}

// CardEventSinkStatus is how delivery to the sink goes.
type CardEventSinkStatus struct {
	// conditions hold Ready: the filter compiles, the sink's configuration and Secrets are usable.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the conditions describe.
	// +optional
	// +kubebuilder:validation:Minimum=0
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// state is Healthy, Retrying (the last attempt failed) or Unreachable (the circuit breaker holds
	// deliveries back).
	// +optional
	State DestinationState `json:"state,omitempty"`

	// delivered counts the states delivered since the sink was created.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Delivered int64 `json:"delivered,omitempty"`
	// failed counts the failed attempts.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Failed int64 `json:"failed,omitempty"`
	// filtered counts the states the filter left out (or failed on).
	// +optional
	// +kubebuilder:validation:Minimum=0
	Filtered int64 `json:"filtered,omitempty"`
	// deadLettered counts the states given up on.
	// +optional
	// +kubebuilder:validation:Minimum=0
	DeadLettered int64 `json:"deadLettered,omitempty"`

	// pending is how many objects have a state waiting to be delivered.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Pending int64 `json:"pending,omitempty"`

	// lagSeconds is the age of the oldest state waiting (0 when none waits).
	// +optional
	// +kubebuilder:validation:Minimum=0
	LagSeconds int64 `json:"lagSeconds,omitempty"`

	// oldestPendingTime is when the oldest waiting state was seen.
	// +optional
	OldestPendingTime *metav1.Time `json:"oldestPendingTime,omitempty"`

	// checkpoint is how far the sink was served: a restarted controller resumes from it.
	// +optional
	Checkpoint *DeliveryCheckpoint `json:"checkpoint,omitempty"`

	// lastDeliveryTime is the last successful delivery.
	// +optional
	LastDeliveryTime *metav1.Time `json:"lastDeliveryTime,omitempty"`

	// lastFailureTime is the last failed attempt.
	// +optional
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`

	// lastError is the error of the last failed attempt.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	LastError string `json:"lastError,omitempty"`

	// deadLetters are the latest states given up on, newest last; the resend-dead-letters annotation (or
	// `cardplane sinks resend`) queues them again.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	DeadLetters []DeadLetter `json:"deadLetters,omitempty"`

	// replay is the last replay queued.
	// +optional
	Replay *ReplayStatus `json:"replay,omitempty"`
}

// CardEventSink delivers the events of the cards of its namespace, and their transactions, to a sink the app
// team owns: which cards (label selector), which events (types and a CEL filter), where (Standard Webhooks,
// CloudEvents, Kafka, NATS) and how hard to try. App teams create it without touching the WebhookEndpoint.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cpsink,categories=cardplane
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Delivered",type=integer,JSONPath=`.status.delivered`
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.pending`
// +kubebuilder:printcolumn:name="Dead",type=integer,JSONPath=`.status.deadLettered`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CardEventSink struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// spec is the subscription.
	// +required
	Spec CardEventSinkSpec `json:"spec,omitzero"`
	// status is how delivery goes.
	// +optional
	Status CardEventSinkStatus `json:"status,omitempty"`
}

// CardEventSinkList is a list of CardEventSinks.
// +kubebuilder:object:root=true
type CardEventSinkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CardEventSink `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &CardEventSink{}, &CardEventSinkList{})
}
