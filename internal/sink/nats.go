package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// NATSConfig configures a NATS JetStream sink.
type NATSConfig struct {
	// URLs are the servers, nats://host:4222 (tls://host:4222 to require TLS).
	URLs []string
	// SubjectPrefix makes the subject: "<prefix>.<Event.Type>", "cardplane.card.updated". A JetStream stream
	// must listen on it ("cardplane.>").
	SubjectPrefix string
	// Stream, when set, is the stream that must take the events (Nats-Expected-Stream): a subject some other
	// stream listens on is refused instead of being stored there.
	Stream string
	// Name names the connection to the server (default "cardplane").
	Name string
	// User and Password, or Token, or NKeySeed (an "SU..." user seed), or Credentials (the content of a .creds
	// file: a user JWT and its seed) authenticate the connection; at most one of them.
	User        string
	Password    string
	Token       string
	NKeySeed    []byte
	Credentials []byte
	// TLS, when set, requires TLS (a CA bundle, a client certificate for mTLS).
	TLS *TLS
	// Timeout bounds one Send, the publish ack included (default 10 s).
	Timeout time.Duration
	// DialControl vets every server address connected to, those the cluster gossips included (default
	// PublicOnly).
	DialControl DialControl
}

// ErrNATSConfig is a NATS option that cannot be used.
var ErrNATSConfig = errors.New("invalid NATS sink configuration")

// NATS is a NATS JetStream sink. Each Send publishes one message and waits for the stream's ack; the
// message's Nats-Msg-Id is Event.ID, so the stream stores a state sent twice within its duplicate window
// (2 minutes by default) once. The headers carry the CloudEvents attributes (ce-id, ce-type, ce-source,
// ce-subject, ce-time, ce-specversion) and Content-Type.
//
// The connection is made in the background and remade after a loss; while there is none, Send fails at
// once (nothing is buffered to go out after Send returned).
type NATS struct {
	conns   *connErrors
	conn    *nats.Conn
	js      jetstream.JetStream
	prefix  string
	stream  string
	timeout time.Duration
}

// NewNATS builds a NATS sink. It does not wait for the servers: a sink built while they are down connects
// when they come up.
func NewNATS(cfg NATSConfig) (*NATS, error) {
	if len(cfg.URLs) == 0 || cfg.SubjectPrefix == "" {
		return nil, fmt.Errorf("%w: servers and a subject prefix are required", ErrNATSConfig)
	}
	if strings.ContainsAny(cfg.SubjectPrefix, " \t\r\n*>") || strings.HasPrefix(cfg.SubjectPrefix, ".") ||
		strings.HasSuffix(cfg.SubjectPrefix, ".") {
		return nil, fmt.Errorf("%w: subject prefix %q is not a literal subject", ErrNATSConfig, cfg.SubjectPrefix)
	}
	opts, err := natsOptions(cfg)
	if err != nil {
		return nil, err
	}
	// The reason a connection attempt failed (a TLS refusal) is only told to this handler.
	conns := &connErrors{}
	opts = append(opts, nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { conns.last.Store(&err) }),
		nats.ConnectHandler(func(*nats.Conn) { conns.last.Store(nil) }),
		nats.ReconnectHandler(func(*nats.Conn) { conns.last.Store(nil) }))
	nc, err := nats.Connect(strings.Join(cfg.URLs, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNATSConfig, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w: %w", ErrNATSConfig, err)
	}
	return &NATS{conns: conns, conn: nc, js: js, prefix: cfg.SubjectPrefix, stream: cfg.Stream, timeout: cfg.Timeout}, nil
}

func natsOptions(cfg NATSConfig) ([]nats.Option, error) {
	name := cfg.Name
	if name == "" {
		name = "cardplane"
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.SetCustomDialer(dialer(cfg.DialControl, 5*time.Second)),
		// Connect in the background and never give up: the sink outlives an outage.
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.IgnoreAuthErrorAbort(),
		// No reconnect buffer: a message published while disconnected fails now, instead of going out later
		// after its Send reported a failure and a newer state was sent.
		nats.ReconnectBufSize(-1),
	}
	if cfg.TLS != nil {
		tc, err := cfg.TLS.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	auth, err := natsAuth(cfg)
	if err != nil {
		return nil, err
	}
	return append(opts, auth...), nil
}

func natsAuth(cfg NATSConfig) ([]nats.Option, error) {
	var opts []nats.Option
	if cfg.User != "" || cfg.Password != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.Token != "" {
		opts = append(opts, nats.Token(cfg.Token))
	}
	if len(cfg.NKeySeed) > 0 {
		kp, err := nkeys.FromSeed(cfg.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("%w: NKey seed: %w", ErrNATSConfig, err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("%w: NKey seed: %w", ErrNATSConfig, err)
		}
		opts = append(opts, nats.Nkey(pub, kp.Sign))
	}
	if len(cfg.Credentials) > 0 {
		jwt, err := nkeys.ParseDecoratedJWT(cfg.Credentials)
		if err != nil {
			return nil, fmt.Errorf("%w: credentials: %w", ErrNATSConfig, err)
		}
		kp, err := nkeys.ParseDecoratedUserNKey(cfg.Credentials)
		if err != nil {
			return nil, fmt.Errorf("%w: credentials: %w", ErrNATSConfig, err)
		}
		opts = append(opts, nats.UserJWT(func() (string, error) { return jwt, nil }, kp.Sign))
	}
	if len(opts) > 1 {
		return nil, fmt.Errorf("%w: more than one of user/password, token, NKey and credentials", ErrNATSConfig)
	}
	return opts, nil
}

// Subject is the subject ev is published on.
func (n *NATS) Subject(ev Event) string { return n.prefix + "." + ev.Type }

// Send publishes ev and waits for the stream's ack.
func (n *NATS) Send(ctx context.Context, ev Event) error {
	if err := ev.validate(); err != nil {
		return err
	}
	if strings.ContainsAny(ev.Type, " \t\r\n*>") {
		return permanent(fmt.Errorf("%w: type %q is not a subject token", ErrInvalidEvent, ev.Type))
	}
	if n.conn.IsClosed() {
		return retryable(ErrClosed)
	}
	if !n.conn.IsConnected() {
		return n.notConnected()
	}
	ctx, cancel := withTimeout(ctx, n.timeout)
	defer cancel()
	msg := &nats.Msg{Subject: n.Subject(ev), Data: ev.Data, Header: nats.Header{}}
	msg.Header.Set("ce-specversion", "1.0")
	msg.Header.Set("ce-id", ev.ID)
	msg.Header.Set("ce-type", ev.CloudEventType())
	msg.Header.Set("ce-source", ev.Source)
	if ev.Subject != "" {
		msg.Header.Set("ce-subject", ev.Subject)
	}
	if !ev.Time.IsZero() {
		msg.Header.Set("ce-time", ev.Time.UTC().Format(time.RFC3339Nano))
	}
	msg.Header.Set("Content-Type", "application/json")
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(ev.ID)}
	if n.stream != "" {
		opts = append(opts, jetstream.WithExpectStream(n.stream))
	}
	_, err := n.js.PublishMsg(ctx, msg, opts...)
	if err == nil {
		return nil
	}
	return n.classify(ctx, msg.Subject, err)
}

// JetStream error codes a retry cannot cure.
const (
	jsErrCodeMessageTooLarge    = jetstream.JSErrCodeStreamMessageExceedsMaximum
	jsErrCodeStreamNotMatch     = 10060 // Nats-Expected-Stream names another stream
	jsErrCodeStreamNotFoundCode = jetstream.JSErrCodeStreamNotFound
)

func (n *NATS) classify(ctx context.Context, subject string, err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return permanent(fmt.Errorf("%w: %w", ErrTooLarge, err))
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeMessageTooLarge:
		return permanent(fmt.Errorf("%w: %w", ErrTooLarge, err))
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == jsErrCodeStreamNotMatch || apiErr.ErrorCode == jsErrCodeStreamNotFoundCode):
		return permanent(fmt.Errorf("%w: %w", ErrNoStream, err))
	case errors.Is(err, nats.ErrConnectionClosed):
		return retryable(fmt.Errorf("%w: %w", ErrClosed, err))
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		return n.noStream(ctx, subject, err)
	case !n.conn.IsConnected():
		return n.notConnected()
	}
	return retryable(err)
}

// errNotConnected is a Send while the connection is (re)connecting.
var errNotConnected = errors.New("not connected to NATS")

// notConnected says why there is no connection: the connection's last error. The server refusing the
// credentials is permanent, like an HTTP 401; anything else (refused, reset, TLS) is retried.
func (n *NATS) notConnected() error {
	last := n.conn.LastError()
	if last == nil {
		last = n.conns.get()
	}
	if last == nil {
		return retryable(errNotConnected)
	}
	err := fmt.Errorf("%w: %w", errNotConnected, last)
	// nats.go passes dial errors on as text: the address policy's refusal is recognised by its words.
	if !errors.Is(last, ErrForbiddenAddress) && strings.Contains(last.Error(), ErrForbiddenAddress.Error()) {
		return permanent(fmt.Errorf("%w: %w: %w", errNotConnected, ErrForbiddenAddress, last))
	}
	if errors.Is(last, ErrForbiddenAddress) {
		return permanent(err)
	}
	for _, auth := range []error{nats.ErrAuthorization, nats.ErrAuthExpired, nats.ErrAuthRevoked, nats.ErrAccountAuthExpired} {
		// The reconnect handler gets the server's -ERR as text ("Authorization Violation"), not the sentinel.
		if errors.Is(last, auth) || strings.Contains(strings.ToLower(last.Error()), strings.TrimPrefix(auth.Error(), "nats: ")) {
			return permanent(err)
		}
	}
	return retryable(err)
}

// noStream tells "no stream listens on the subject" (permanent: the streams are configured so) from "the
// stream did not answer in time" (a leader election, a restart), by asking JetStream which stream owns it.
func (n *NATS) noStream(ctx context.Context, subject string, err error) error {
	name, lerr := n.js.StreamNameBySubject(ctx, subject)
	switch {
	case errors.Is(lerr, jetstream.ErrStreamNotFound):
		return permanent(fmt.Errorf("%w: %s: %w", ErrNoStream, subject, err))
	case lerr == nil:
		return retryable(fmt.Errorf("stream %s did not answer: %w", name, err))
	}
	return retryable(fmt.Errorf("%w (stream lookup: %w)", err, lerr))
}

// Lingers marks a Send that gave up waiting as possibly still in flight (see Lingering).
func (n *NATS) Lingers() {}

var _ Lingering = (*NATS)(nil)

// Close settles what was published, up to the timeout, and closes the connection.
func (n *NATS) Close() error {
	// A round trip first, up to the timeout: the server has then taken every message published on this
	// connection (one whose ack a Send gave up waiting for too), before a new connection publishes the next
	// state of the same card.
	if n.conn.IsConnected() { // not connected: nothing sent can still land (what waits to reconnect is dropped)
		ctx, cancel := withTimeout(context.Background(), n.timeout)
		defer cancel()
		_ = n.conn.FlushWithContext(ctx)
	}
	n.conn.Close()
	return nil
}
