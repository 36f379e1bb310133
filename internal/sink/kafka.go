package sink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// KafkaConfig configures a Kafka sink.
type KafkaConfig struct {
	// Brokers are the bootstrap brokers, host:port.
	Brokers []string
	// Topic receives every event.
	Topic string
	// ClientID names the producer to the brokers (default "cardplane").
	ClientID string
	// TLS, when set, connects with TLS (a CA bundle, a client certificate for mTLS).
	TLS *TLS
	// SASL, when set, authenticates with PLAIN or SCRAM.
	SASL *KafkaSASL
	// Timeout bounds one Send (default 10 s).
	Timeout time.Duration
	// MaxRecordBytes is the largest record batch sent (default 1 MB, the brokers' default message.max.bytes);
	// a larger event fails at once, permanently.
	MaxRecordBytes int32
	// DialControl vets every broker address connected to, the advertised ones included (default PublicOnly).
	DialControl DialControl
}

// KafkaSASL is a SASL mechanism and its credentials.
type KafkaSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string
	Username  string
	Password  string
}

// ErrKafkaConfig is a Kafka option that cannot be used.
var ErrKafkaConfig = errors.New("invalid Kafka sink configuration")

// Kafka is a Kafka sink: one franz-go producer, idempotent (franz-go's default, never disabled here) with
// acks from all in-sync replicas. The record key is Event.Key, so one card's states go to one partition, in
// order; the value is Event.Data and the headers are the CloudEvents Kafka binding's binary mode (ce_id,
// ce_type, ce_source, ce_subject, ce_time, ce_specversion, content-type).
//
// Idempotence removes the duplicates of the producer's own retries within its session. It cannot remove a
// state the caller sends again after an answer it did not get (a Send that timed out while its record was in
// flight): that record may be written, in order, and the retry written after it. Consumers deduplicate on
// ce_id.
type Kafka struct {
	client  *kgo.Client
	timeout time.Duration
	conns   *connErrors

	mu sync.Mutex
	// pending are the records produced and not yet answered, by event ID. A Send of an event whose record is
	// still pending (its first Send timed out while franz-go could not take the record back) waits for that
	// record instead of writing a second one.
	pending map[string]*produced
}

// produced is one record's outcome.
type produced struct {
	done chan struct{}
	err  error
}

// connErrors keeps the last connection error (a refused dial, a TLS or SASL failure), so that a Send that
// failed for want of a connection says why: the clients retry connections themselves and report only the
// timeout or "not connected".
type connErrors struct{ last atomic.Pointer[error] }

// OnBrokerConnect is franz-go's connection hook.
func (c *connErrors) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil {
		c.last.Store(nil)
		return
	}
	c.last.Store(&err)
}

func (c *connErrors) get() error {
	if p := c.last.Load(); p != nil {
		return *p
	}
	return nil
}

// NewKafka builds a Kafka sink. It connects to nothing until the first Send, so it can be built while the
// brokers are down.
func NewKafka(cfg KafkaConfig) (*Kafka, error) {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" {
		return nil, fmt.Errorf("%w: brokers and a topic are required", ErrKafkaConfig)
	}
	opts, err := kafkaOptions(cfg)
	if err != nil {
		return nil, err
	}
	conns := &connErrors{}
	cl, err := kgo.NewClient(append(opts, kgo.WithHooks(conns))...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKafkaConfig, err)
	}
	return &Kafka{client: cl, timeout: cfg.Timeout, conns: conns, pending: map[string]*produced{}}, nil
}

func kafkaOptions(cfg KafkaConfig) ([]kgo.Opt, error) {
	clientID := cfg.ClientID
	if clientID == "" {
		clientID = "cardplane"
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(slices.Clone(cfg.Brokers)...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.ClientID(clientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Each Send waits for its record: lingering would only add latency. Concurrent Sends still batch
		// while a request is in flight.
		kgo.ProducerLinger(0),
	}
	if cfg.MaxRecordBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(cfg.MaxRecordBytes))
	}
	dial, err := tlsDial(cfg.DialControl, cfg.TLS)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.Dialer(dial))
	if cfg.SASL != nil {
		m, err := kafkaMechanism(*cfg.SASL, cfg.TLS != nil)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func kafkaMechanism(s KafkaSASL, withTLS bool) (sasl.Mechanism, error) {
	if s.Username == "" || s.Password == "" {
		return nil, fmt.Errorf("%w: SASL needs a username and a password", ErrKafkaConfig)
	}
	switch s.Mechanism {
	case "PLAIN":
		// PLAIN sends the password as it is: never over a plaintext connection.
		if !withTLS {
			return nil, fmt.Errorf("%w: SASL PLAIN only over TLS", ErrKafkaConfig)
		}
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("%w: SASL mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", ErrKafkaConfig, s.Mechanism)
}

// Send produces ev and waits for the brokers' ack. When the attempt's time runs out while the record is in
// flight, franz-go cannot take it back (the brokers may have it): Send returns a retryable error, the record
// stays pending and may still be written, before anything produced later to its partition, and the next Send
// of the same event waits for it rather than writing the event twice.
func (k *Kafka) Send(ctx context.Context, ev Event) error {
	if err := ev.validate(); err != nil {
		return err
	}
	if ev.Key == "" {
		// Without a key the record could go to any partition: its card's order would be lost.
		return permanent(fmt.Errorf("%w: no key", ErrInvalidEvent))
	}
	ctx, cancel := withTimeout(ctx, k.timeout)
	defer cancel()
	for {
		p, fresh := k.produce(ctx, ev)
		select {
		case <-p.done:
			// An earlier Send's record that franz-go failed when that Send gave up says nothing of this
			// attempt: produce again while there is time.
			if !fresh && (errors.Is(p.err, context.DeadlineExceeded) || errors.Is(p.err, context.Canceled)) && ctx.Err() == nil {
				continue
			}
			return classifyKafka(p.err)
		case <-ctx.Done():
		}
		err := fmt.Errorf("kafka: no ack yet, the record is pending: %w", ctx.Err())
		if last := k.conns.get(); last != nil {
			err = fmt.Errorf("%w (last broker connection error: %w)", err, last)
		}
		return classifyKafka(err)
	}
}

// produce produces ev's record with ctx (so franz-go fails it when ctx ends, if it safely can), or returns
// the record of ev still pending from an earlier Send.
func (k *Kafka) produce(ctx context.Context, ev Event) (p *produced, fresh bool) {
	k.mu.Lock()
	if p, ok := k.pending[ev.ID]; ok {
		k.mu.Unlock()
		return p, false
	}
	p = &produced{done: make(chan struct{})}
	k.pending[ev.ID] = p
	k.mu.Unlock()
	// Not under k.mu: Produce blocks while the buffer is full, and only promises, which take k.mu, free it.
	k.client.Produce(ctx, kafkaRecord(ev), func(_ *kgo.Record, err error) {
		k.mu.Lock()
		delete(k.pending, ev.ID)
		k.mu.Unlock()
		p.err = err
		close(p.done)
	})
	return p, true
}

func kafkaRecord(ev Event) *kgo.Record {
	h := []kgo.RecordHeader{
		{Key: "ce_specversion", Value: []byte("1.0")},
		{Key: "ce_id", Value: []byte(ev.ID)},
		{Key: "ce_type", Value: []byte(ev.CloudEventType())},
		{Key: "ce_source", Value: []byte(ev.Source)},
		{Key: "content-type", Value: []byte("application/json")},
	}
	if ev.Subject != "" {
		h = append(h, kgo.RecordHeader{Key: "ce_subject", Value: []byte(ev.Subject)})
	}
	if !ev.Time.IsZero() {
		h = append(h, kgo.RecordHeader{Key: "ce_time", Value: []byte(ev.Time.UTC().Format(time.RFC3339Nano))})
	}
	return &kgo.Record{Key: []byte(ev.Key), Value: ev.Data, Headers: h, Timestamp: ev.Time}
}

// kafkaPermanent are the broker errors a retry of the same record cannot cure: the record is too large, the
// topic does not exist (after franz-go's own retries) or is invalid, the credentials or ACLs refuse it.
var kafkaPermanent = []error{
	kerr.UnknownTopicOrPartition, kerr.InvalidTopicException, kerr.InvalidRecord, kerr.PolicyViolation,
	kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed, kerr.SaslAuthenticationFailed,
	kerr.UnsupportedSaslMechanism, kerr.IllegalSaslState, kerr.InvalidRequiredAcks,
}

func classifyKafka(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge):
		return permanent(fmt.Errorf("%w: %w", ErrTooLarge, err))
	case errors.Is(err, kgo.ErrClientClosed):
		return retryable(fmt.Errorf("%w: %w", ErrClosed, err))
	}
	for _, p := range kafkaPermanent {
		if errors.Is(err, p) {
			return permanent(err)
		}
	}
	return classifyNetwork(err)
}

// Lingers marks a Send that gave up waiting as possibly still in flight (see Lingering).
func (k *Kafka) Lingers() {}

var _ Lingering = (*Kafka)(nil)

// Close settles the records still unanswered, up to the timeout, and closes the producer. Call it once no
// Send is running (Rotating does); a record still buffered after the timeout fails.
func (k *Kafka) Close() error {
	// Records still unanswered (a Send gave up waiting; franz-go keeps a record it cannot safely take back)
	// are settled first, up to the timeout: a client built after this one must not have its next record of
	// the same card overtaken by one of these.
	ctx, cancel := withTimeout(context.Background(), k.timeout)
	defer cancel()
	_ = k.client.Flush(ctx)
	k.client.Close()
	return nil
}
