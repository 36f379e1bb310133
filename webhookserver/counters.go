package webhookserver

import (
	"context"
	"sort"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/webhookserver/ingest"
)

// Counters batch the per-endpoint status counters in memory and add them to WebhookEndpoint status about
// once a second: no API write per callback. Each replica adds its own deltas under a resourceVersion
// precondition, so replicas never overwrite each other's counts.
type Counters struct {
	mu     sync.Mutex
	deltas map[types.NamespacedName]*delta
}

type delta struct {
	received, applied, duplicates, unknown int64
	rejected                               map[string]int64
	lastEvent                              time.Time
}

func (c *Counters) with(key types.NamespacedName, f func(d *delta)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deltas == nil {
		c.deltas = map[types.NamespacedName]*delta{}
	}
	d := c.deltas[key]
	if d == nil {
		d = &delta{rejected: map[string]int64{}}
		c.deltas[key] = d
	}
	f(d)
}

// Received counts a callback that reached an existing endpoint.
func (c *Counters) Received(key types.NamespacedName) { c.with(key, func(d *delta) { d.received++ }) }

// Rejected counts a refused callback by reason.
func (c *Counters) Rejected(key types.NamespacedName, reason string) {
	c.with(key, func(d *delta) { d.rejected[reason]++ })
}

// Outcome is what became of an acknowledged callback; its value is the result label of
// cardplane_webhook_requests_total.
type Outcome string

// Outcomes of acknowledged callbacks.
const (
	// OutcomeApplied: its facts were written.
	OutcomeApplied Outcome = "applied"
	// OutcomeDuplicate: nothing changed, the facts were known (or the delivery was answered before).
	OutcomeDuplicate Outcome = "duplicate"
	// OutcomeUnknown: a verified callback of an event type no adapter knows, acknowledged without applying it.
	OutcomeUnknown Outcome = "unknown"
	// OutcomeSpooled: kept in the spool, to be applied when the API server takes writes again.
	OutcomeSpooled Outcome = "spooled"
	// OutcomeAuthorized: a real-time authorization request, answered with its decision.
	OutcomeAuthorized Outcome = "authorized"
)

// Accepted counts an acknowledged callback: unknown and duplicate ones apart, every other as applied.
func (c *Counters) Accepted(key types.NamespacedName, at time.Time, outcome Outcome) {
	c.with(key, func(d *delta) {
		switch outcome {
		case OutcomeUnknown:
			d.unknown++
		case OutcomeDuplicate:
			d.duplicates++
		default:
			d.applied++
		}
		if at.After(d.lastEvent) {
			d.lastEvent = at
		}
	})
}

func (c *Counters) take() map[types.NamespacedName]*delta {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.deltas
	c.deltas = nil
	return out
}

// Flush adds the pending deltas to the endpoints' status. Deltas that cannot be written are kept for the
// next flush; deltas of deleted endpoints are dropped.
func (c *Counters) Flush(ctx context.Context, cl client.Client, reader client.Reader) {
	for key, d := range c.take() {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			ep := &cardsv1alpha1.WebhookEndpoint{}
			if err := reader.Get(ctx, key, ep); err != nil {
				return err
			}
			before := ep.DeepCopy()
			add(&ep.Status, d)
			return cl.Status().Patch(ctx, ep, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), ingest.FieldOwner)
		})
		if client.IgnoreNotFound(err) != nil {
			logf.FromContext(ctx).Error(err, "Writing endpoint counters; will retry", "endpoint", klog.KRef(key.Namespace, key.Name))
			c.with(key, func(p *delta) { merge(p, d) })
		}
	}
}

func add(st *cardsv1alpha1.WebhookEndpointStatus, d *delta) {
	st.Counters.Received += d.received
	st.Counters.Applied += d.applied
	st.Counters.Duplicates += d.duplicates
	st.Counters.UnknownEvents += d.unknown
	for reason, n := range d.rejected {
		found := false
		for i := range st.Counters.Rejected {
			if st.Counters.Rejected[i].Reason == reason {
				st.Counters.Rejected[i].Count += n
				found = true
			}
		}
		if !found && len(st.Counters.Rejected) < 32 {
			st.Counters.Rejected = append(st.Counters.Rejected, cardsv1alpha1.ReasonCount{Reason: reason, Count: n})
		}
	}
	sort.Slice(st.Counters.Rejected, func(i, j int) bool { return st.Counters.Rejected[i].Reason < st.Counters.Rejected[j].Reason })
	if !d.lastEvent.IsZero() && (st.LastEventTime == nil || d.lastEvent.After(st.LastEventTime.Time)) {
		t := metav1.NewTime(d.lastEvent)
		st.LastEventTime = &t
	}
}

func merge(into, d *delta) {
	into.received += d.received
	into.applied += d.applied
	into.duplicates += d.duplicates
	into.unknown += d.unknown
	for r, n := range d.rejected {
		into.rejected[r] += n
	}
	if d.lastEvent.After(into.lastEvent) {
		into.lastEvent = d.lastEvent
	}
}

// CounterFlusher is the manager runnable that flushes Counters every interval on every replica.
type CounterFlusher struct {
	Counters *Counters
	Client   client.Client
	Reader   client.Reader
	Interval time.Duration
}

// Start flushes until ctx ends, then once more.
func (f *CounterFlusher) Start(ctx context.Context) error {
	t := time.NewTicker(f.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			f.Counters.Flush(flushCtx, f.Client, f.Reader)
			return nil
		case <-t.C:
			f.Counters.Flush(ctx, f.Client, f.Reader)
		}
	}
}

// NeedLeaderElection is false: every replica counts its own callbacks.
func (f *CounterFlusher) NeedLeaderElection() bool { return false }
