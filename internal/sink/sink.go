// Package sink sends object states to the outside world, one transport per implementation behind one
// interface: an HTTP POST signed per Standard Webhooks (the projection's transport), CloudEvents 1.0 over HTTP
// (binary or structured mode), Kafka (franz-go, idempotent producer) and NATS JetStream.
//
// A Sink sends one Event and says how it went; it does not retry, queue or reorder. Ordering and retries stay
// with the caller (the projection's dispatcher), which never sends two states of one object at once and always
// sends the latest: every sink delivers what it was given before it returns, so per-object order holds on
// every transport. What each transport adds for the receiver:
//
//   - Event.ID is stable per object state, so a state sent twice (a retry after a lost answer) carries the same
//     ID: webhook-id, ce-id, the Kafka ce_id header, Nats-Msg-Id. JetStream drops such a duplicate itself within
//     the stream's duplicate window; Kafka cannot (its idempotent producer removes only the duplicates of its
//     own internal retries within one producer session), so Kafka consumers deduplicate on ce_id.
//   - Event.Key (the card) is the Kafka record key, so one card's states land in one partition, in order.
//
// A failed Send returns an error that Permanent and RetryAfter classify: a permanent error (a 4xx answer other
// than 408, 425 and 429, a record too large, no JetStream stream for the subject, a forbidden address) will not
// succeed by sending the same state again, so the caller gives the state up at once instead of spending its
// retry budget; everything else (refused connections, timeouts, 5xx, broker errors Kafka marks retriable) is
// worth retrying.
//
// Sinks are built from plain configuration values (no Kubernetes types): the caller reads Secrets, builds a
// new sink when one changes, and swaps it in with Rotating, which closes the old one once its sends are done.
package sink

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sink delivers events to one destination. Implementations are safe for concurrent use.
type Sink interface {
	// Send delivers ev once and returns when the destination has it (an HTTP 2xx, a Kafka ack from all
	// in-sync replicas, a JetStream publish ack) or the attempt failed. ctx bounds the attempt; the sink's own
	// timeout applies too.
	Send(ctx context.Context, ev Event) error
	// Close releases connections. The sink is not used after it.
	Close() error
}

// Event is one object state.
type Event struct {
	// ID is the same for every attempt of the same state ("<uid>-<stateSequence>"): receivers deduplicate on it.
	ID string
	// Type is the event type, "card.updated" or "transaction.updated"; the CloudEvents type is
	// "io.cardplane." + Type (CloudEventType).
	Type string
	// Source names the object, "/namespaces/<namespace>/cards/<name>" (the CloudEvents source).
	Source string
	// Subject is the CloudEvents subject: what the event is about within Source, such as the card's name.
	Subject string
	// Key orders deliveries: states with the same key stay in order (the Kafka record key). The card's UID
	// or name; a transaction's card, so a card and its transactions share a partition.
	Key string
	// Time is when the state was observed.
	Time time.Time
	// Data is the object as JSON.
	Data []byte
}

// CloudEventTypePrefix prefixes Event.Type to make the CloudEvents type.
const CloudEventTypePrefix = "io.cardplane."

// CloudEventType is the CloudEvents type of ev, "io.cardplane.card.updated".
func (ev Event) CloudEventType() string { return CloudEventTypePrefix + ev.Type }

func (ev Event) validate() error {
	switch {
	case ev.ID == "":
		return permanent(fmt.Errorf("%w: no ID", ErrInvalidEvent))
	case ev.Type == "":
		return permanent(fmt.Errorf("%w: no type", ErrInvalidEvent))
	case ev.Source == "":
		return permanent(fmt.Errorf("%w: no source", ErrInvalidEvent))
	}
	return nil
}

var (
	// ErrInvalidEvent is an event without an ID, type or source.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrClosed is a Send on a closed sink.
	ErrClosed = errors.New("sink is closed")
	// ErrForbiddenAddress is a destination that resolves to an address the sink's address policy refuses.
	ErrForbiddenAddress = errors.New("destination address is not allowed")
	// ErrTooLarge is an event the destination will never take: larger than its record or message limit.
	ErrTooLarge = errors.New("event is too large for the destination")
	// ErrNoStream is a NATS subject no JetStream stream listens on.
	ErrNoStream = errors.New("no JetStream stream for the subject")
)

// Error is a failed Send.
type Error struct {
	// Status is the HTTP status the destination answered, 0 when it did not answer one.
	Status int
	// RetryAfter is the delay the destination asked for (HTTP 429 or 503 with Retry-After).
	RetryAfter time.Duration
	// Permanent marks an error that sending the same event again will not cure.
	Permanent bool
	Err       error
}

func (e *Error) Error() string {
	switch {
	case e.Status != 0 && e.Err != nil:
		return fmt.Sprintf("destination answered %d: %v", e.Status, e.Err)
	case e.Status != 0:
		return fmt.Sprintf("destination answered %d", e.Status)
	case e.Err != nil:
		return e.Err.Error()
	}
	return "delivery failed"
}

func (e *Error) Unwrap() error { return e.Err }

func permanent(err error) error { return &Error{Permanent: true, Err: err} }

func retryable(err error) error { return &Error{Err: err} }

// Permanent reports whether err will not be cured by sending the same event again. A context error is never
// permanent: the attempt was cut short, not refused.
func Permanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// RetryAfter is the delay the destination asked for before the next attempt, 0 when it asked for none.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// withTimeout bounds one attempt by the sink's timeout (default 10 s) as well as by the caller's ctx.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = defaultTimeout
	}
	return context.WithTimeout(ctx, d)
}

const defaultTimeout = 10 * time.Second
