// Package decisionlog is the audit trail of authorization decisions: one JSON line per decision, callback
// authorizations and AuthorizationReviews alike, with or without a transaction ID, written off the money path.
//
// A decision is answered before it is logged and never waits for the log: records go through a bounded buffer
// to a single writer. When the buffer is full (the writer is stuck on a slow disk or a blocked pipe) the record
// is dropped and counted (cardplane_decision_log_dropped_total), never silently and never at the cost of the
// provider's deadline.
package decisionlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// Sources of decisions.
const (
	SourceCallback = "callback" // a provider's real-time authorization callback
	SourceReview   = "review"   // an AuthorizationReview
)

// Record is one decision. It holds the inputs the rules saw, never a card number: the card is named by its
// object and provider ID, and the merchant by name, MCC and country.
type Record struct {
	DecisionID string    `json:"decisionID"`
	Time       time.Time `json:"time"`
	Source     string    `json:"source"`
	// Endpoint is "namespace/name" of the WebhookEndpoint, when one is known.
	Endpoint string `json:"endpoint,omitempty"`
	Provider string `json:"provider,omitempty"`
	Card     *Card  `json:"card,omitempty"`
	Input    Input  `json:"input"`

	cardsv1alpha1.RuleResult
	Shadow          []cardsv1alpha1.RuleResult `json:"shadow,omitempty"`
	RuleSetVersion  string                     `json:"ruleSetVersion,omitempty"`
	RuleSetRevision string                     `json:"ruleSetRevision,omitempty"`
	// LatencyMicroseconds is from the request's arrival to the decision.
	LatencyMicroseconds int64 `json:"latencyMicroseconds"`
}

// Card names the card decided on, with the labels rule-set selectors read (so a backtest can select it).
type Card struct {
	Namespace      string                  `json:"namespace"`
	Name           string                  `json:"name"`
	ProviderCardID string                  `json:"providerCardID,omitempty"`
	Labels         map[string]string       `json:"labels,omitempty"`
	Phase          cardsv1alpha1.CardPhase `json:"phase,omitempty"`
}

// Input is what the decision was asked about.
type Input struct {
	TransactionID   string                `json:"transactionID,omitempty"`
	AuthorizationID string                `json:"authorizationID,omitempty"`
	Amount          cardsv1alpha1.Decimal `json:"amount"`
	Currency        string                `json:"currency"`
	MCC             string                `json:"mcc,omitempty"`
	MerchantName    string                `json:"merchantName,omitempty"`
	MerchantCountry string                `json:"merchantCountry,omitempty"`
	Channel         string                `json:"channel,omitempty"`
}

var (
	written = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cardplane_decision_log_records_total",
		Help: "Authorization decisions written to the decision log.",
	})
	dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cardplane_decision_log_dropped_total",
		Help: "Authorization decisions not written to the decision log because its buffer was full or its output failed.",
	})
)

func init() { metrics.Registry.MustRegister(written, dropped) }

// DefaultBuffer is how many records may wait for the writer: at 1 000 decisions a second, 10 s of a stalled
// output.
const DefaultBuffer = 10000

// Logger writes records as JSON lines to one output. Log never blocks; Start runs the writer (a manager
// Runnable) and, when stopped, writes what is still buffered before it returns.
type Logger struct {
	// WaitFor are the servers that decide: when the manager stops, the writer keeps writing until they have
	// stopped answering (a stopping replica still serves during its shutdown delay), then drains the buffer.
	WaitFor []interface{ Done() <-chan struct{} }

	out     io.Writer
	records chan Record
	done    chan struct{}
}

// New makes a logger writing to out with room for buffer waiting records (DefaultBuffer when < 1).
func New(out io.Writer, buffer int) *Logger {
	if buffer < 1 {
		buffer = DefaultBuffer
	}
	return &Logger{out: out, records: make(chan Record, buffer), done: make(chan struct{})}
}

// Log hands a record to the writer, giving it an ID and time when it has none. It reports false, and counts the
// record dropped, when the buffer is full. A nil Logger logs nothing.
func (l *Logger) Log(r Record) bool {
	if l == nil {
		return false
	}
	if r.DecisionID == "" {
		r.DecisionID = NewID()
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	select {
	case <-l.done: // the writer has stopped (shutdown): nothing would write it
		dropped.Inc()
		return false
	default:
	}
	select {
	case l.records <- r:
		return true
	default:
		dropped.Inc()
		return false
	}
}

// Start writes records until ctx ends, then the ones still buffered. Each record is one write of one line, so
// a failed write loses exactly that record, and counts it.
func (l *Logger) Start(ctx context.Context) error {
	defer close(l.done)
	enc := json.NewEncoder(l.out)
	write := func(r Record) {
		if err := enc.Encode(&r); err != nil {
			dropped.Inc()
			return
		}
		written.Inc()
	}
	for {
		select {
		case r := <-l.records:
			write(r)
		case <-ctx.Done():
			l.writeUntilServersStop(write)
			for {
				select {
				case r := <-l.records:
					write(r)
				default:
					return nil
				}
			}
		}
	}
}

// writeUntilServersStop keeps writing while the servers in WaitFor still answer, for at most a minute.
func (l *Logger) writeUntilServersStop(write func(Record)) {
	limit := time.After(time.Minute)
	for _, s := range l.WaitFor {
		for waiting := true; waiting; {
			select {
			case r := <-l.records:
				write(r)
			case <-s.Done():
				waiting = false
			case <-limit:
				return
			}
		}
	}
}

// Done is closed when Start has returned and everything buffered is written.
func (l *Logger) Done() <-chan struct{} { return l.done }

// NeedLeaderElection is false: every replica logs its own decisions.
func (l *Logger) NeedLeaderElection() bool { return false }

// NewID is a random 128-bit decision ID in hex.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Read parses a decision log (JSON lines; blank lines skipped).
func Read(r io.Reader) ([]Record, error) {
	dec := json.NewDecoder(r)
	var out []Record
	for {
		var rec Record
		err := dec.Decode(&rec)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
}
