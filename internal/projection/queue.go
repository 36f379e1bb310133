package projection

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/sink"
	"github.com/cardplane/cardplane/internal/text"
)

const (
	// defaultMaxInFlight is a destination's concurrency when spec.destinations[].maxInFlight is not set.
	defaultMaxInFlight = 8
	// defaultTimeout and maxTimeout bound one delivery request: a worker is never held longer.
	defaultTimeout = 10 * time.Second
	maxTimeout     = 30 * time.Second
)

// target is what a queue delivers to: one destination of a WebhookEndpoint (destTarget) or one CardEventSink
// (sinkTarget). The queue keeps the order, the retries, the breaker and the checkpoint; the target says how
// hard to try, builds each delivery and hears how each state ended.
type target interface {
	// retry is the target's current retry policy; ok is false once the target is gone.
	retry() (r retryPolicy, ok bool)
	// prepare builds the delivery of obj's current state; nil (and no error) when the target does not take this
	// state (a filter left it out). An error is a failed attempt.
	prepare(ctx context.Context, k kind, obj client.Object) (func(context.Context) error, error)
	// succeeded and gaveUp hear how a state ended.
	succeeded(key objectKey, obj client.Object)
	gaveUp(key objectKey, obj client.Object, at attemptState, err error)
}

// retryPolicy is how often and how long a state is tried.
type retryPolicy struct {
	maxAttempts int32
	minB, maxB  time.Duration
	// permanentGivesUp gives a state up at the first error that retrying cannot cure (sink.Permanent).
	permanentGivesUp bool
}

// destQueue is one target's queue: the objects whose latest state it has not been sent yet.
type destQueue struct {
	d *Dispatcher
	t target
	// name is the target in logs: "<endpoint>/<destination>" or "cardeventsink <namespace>/<name>".
	name    string
	m       queueMetrics
	wq      workqueue.TypedDelayingInterface[objectKey]
	ctx     context.Context
	cancel  context.CancelFunc
	breaker breaker
	// start is the checkpoint the destination had when the queue was made: objects listed at start with a
	// resourceVersion at or below it were delivered before a restart.
	start [kinds]uint64
	// backfilling: what the destination is owed is still being queued; its checkpoint does not move.
	backfilling atomic.Bool

	mu        sync.Mutex
	workers   int                   // running
	want      int                   // maxInFlight
	delivered *cache.LRUExpireCache // objectKey -> sentState
	attempts  map[objectKey]attemptState
	pending   map[objectKey]pendingState
	health    health
	written   [kinds]uint64 // the checkpoint last reported
}

// sentState is the state of an object last delivered.
type sentState struct {
	uid types.UID
	seq int64
}

// recentlySent bounds what a queue remembers of delivered states: the last minute, at most this many
// objects. That is enough to drop a change notice that arrives after its state was sent (informers notify
// after their cache is updated, so a worker may read and send a state before its notice is handled), without
// an entry for every object ever delivered; a state forgotten early is at worst sent twice.
const (
	recentlySentFor = time.Minute
	recentlySentMax = 1 << 16
)

// attemptState counts the failed attempts at one state of an object; given is set once the state was given up.
type attemptState struct {
	sentState
	n     int32
	given bool
}

// pendingState is an object with a change not yet delivered: the resourceVersions of its first and last
// undelivered change, and when the first was seen.
type pendingState struct {
	minRV, maxRV uint64
	since        time.Time
}

// health is what the status and metrics report of a destination.
type health struct {
	lastDelivery, lastFailure time.Time
	lastError                 string
	failing                   bool
}

func newDestQueue(d *Dispatcher, name string, m queueMetrics, start [kinds]uint64) *destQueue {
	ctx, cancel := context.WithCancel(d.ctx)
	q := &destQueue{d: d, name: name, m: m, ctx: ctx, cancel: cancel, start: start, written: start,
		wq:        workqueue.NewTypedDelayingQueue[objectKey](),
		delivered: cache.NewLRUExpireCache(recentlySentMax), attempts: map[objectKey]attemptState{}, pending: map[objectKey]pendingState{}}
	return q
}

func (q *destQueue) shutDown() {
	q.cancel()
	q.wq.ShutDown()
	q.m.forget()
}

// resize sets the number of workers: more are started at once, extra ones stop after their current item.
func (q *destQueue) resize(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.want = n
	for ; q.workers < n; q.workers++ {
		go q.run()
	}
}

// enqueue records a change of key at resourceVersion rv. An object first listed at or below the checkpoint
// the queue started from (listed is true) was delivered before a restart. force drops what the queue knows
// was delivered, so the current state is sent again.
func (q *destQueue) enqueue(key objectKey, rv uint64, listed, force bool) {
	if listed && !force && rv != 0 && rv <= q.start[key.kind] {
		return
	}
	q.mu.Lock()
	if force {
		q.delivered.Remove(key)
		delete(q.attempts, key)
		q.breaker.probeNow(q.d.Now())
	}
	p, ok := q.pending[key]
	if !ok {
		p = pendingState{minRV: rv, since: q.d.Now()}
	}
	p.minRV, p.maxRV = min(p.minRV, rv), max(p.maxRV, rv)
	q.pending[key] = p
	q.mu.Unlock()
	q.wq.Add(key)
}

// forget drops what the queue knows of a deleted object.
func (q *destQueue) forget(key objectKey) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.delivered.Remove(key)
	delete(q.attempts, key)
	delete(q.pending, key)
}

// settle marks key's changes up to rv as served (delivered, or given up after the retry budget).
func (q *destQueue) settle(key objectKey, rv uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p, ok := q.pending[key]
	switch {
	case !ok:
	case rv == 0 || p.maxRV <= rv:
		delete(q.pending, key)
	default:
		// A change arrived while this one was sent: it stays pending (and the queue holds the key again).
		p.minRV = rv + 1
		q.pending[key] = p
	}
}

func (q *destQueue) run() {
	for {
		key, shutdown := q.wq.Get()
		if shutdown {
			return
		}
		q.mu.Lock()
		stop := q.workers > q.want
		if stop {
			q.workers--
		}
		q.mu.Unlock()
		if stop {
			q.wq.Done(key)
			q.wq.Add(key)
			return
		}
		q.process(key)
		q.wq.Done(key)
	}
}

// process delivers the latest state of one object, or schedules its retry.
func (q *destQueue) process(key objectKey) {
	obj := key.kind.newObject()
	if err := q.d.Cache.Get(q.ctx, key.NamespacedName, obj); err != nil {
		if client.IgnoreNotFound(err) == nil {
			q.forget(key)
		} else {
			q.wq.AddAfter(key, time.Second)
		}
		return
	}
	rv, state := resourceVersion(obj), sentState{obj.GetUID(), sequenceOf(obj)}
	q.mu.Lock()
	v, known := q.delivered.Get(key)
	sent, _ := v.(sentState)
	at := q.attempts[key]
	q.mu.Unlock()
	if at.sentState != state {
		at = attemptState{sentState: state}
	}
	r, ok := q.t.retry()
	if !ok {
		return
	}
	if state.seq == 0 || (known && sent.uid == state.uid && sent.seq >= state.seq) || at.given {
		q.settle(key, rv) // nothing observed yet, already delivered, or given up
		return
	}
	if at.n >= r.maxAttempts {
		// The retry budget was lowered below the attempts this state already had: given up now, as any other.
		q.giveUp(key, at, fmt.Errorf("the retry budget is now %d attempts and %d were made; the last error: %s",
			r.maxAttempts, at.n, q.lastError()), obj, rv)
		return
	}
	send, err := q.t.prepare(q.ctx, key.kind, obj)
	if err == nil && send == nil {
		q.skipped(key, state, rv)
		return
	}
	if notConfigured(err) {
		// Nothing can leave until the spec or a Secret is fixed: no attempt made, so neither the breaker nor
		// the retry budget hears of it, and a worker never waits in a cooldown holding an error from before
		// the fix. The state waits.
		q.failed(key, at, err, false, obj, rv, r)
		return
	}
	probe, ok := q.breaker.allow(q.ctx, q.d.Now)
	if !ok {
		return
	}
	began := time.Now()
	if err == nil {
		err = send(q.ctx)
	}
	if q.ctx.Err() != nil {
		return // shut down: its metrics are gone, and an interrupted delivery is no failure of the destination
	}
	q.m.observe(err, time.Since(began))
	q.breaker.done(probe, err == nil, q.d.Now())
	if err == nil {
		q.succeeded(key, state, rv, obj)
		return
	}
	q.failed(key, at, err, probe, obj, rv, r)
}

// skipped records a state the target does not take as served: it is not looked at again.
func (q *destQueue) skipped(key objectKey, state sentState, rv uint64) {
	q.mu.Lock()
	q.delivered.Add(key, state, recentlySentFor)
	delete(q.attempts, key)
	q.mu.Unlock()
	q.settle(key, rv)
}

// succeeded records a successful delivery.
func (q *destQueue) succeeded(key objectKey, state sentState, rv uint64, obj client.Object) {
	q.mu.Lock()
	q.delivered.Add(key, state, recentlySentFor)
	delete(q.attempts, key)
	q.health.lastDelivery, q.health.failing = q.d.Now(), false
	q.mu.Unlock()
	q.settle(key, rv)
	q.t.succeeded(key, obj)
}

// failed counts a failed attempt and schedules the next, or gives the state up once the budget is spent (or at
// once, for a target that gives up on permanent errors). A probe of an open circuit does not count: nothing is
// given up while the destination is down. Nor does an attempt that never left because the target's transport
// cannot be built (a Secret missing): nothing is given up until the configuration is fixed.
func (q *destQueue) failed(key objectKey, at attemptState, err error, probe bool, obj client.Object, rv uint64, r retryPolicy) {
	msg := text.Clip(err.Error(), 512)
	if !probe && !notConfigured(err) {
		at.n++
	}
	q.mu.Lock()
	q.attempts[key] = at
	q.health.lastFailure, q.health.lastError, q.health.failing = q.d.Now(), msg, true
	q.mu.Unlock()
	if at.n >= r.maxAttempts || (r.permanentGivesUp && sink.Permanent(err)) {
		q.giveUp(key, at, err, obj, rv)
		return
	}
	wait := backoff(max(at.n, 1), r.minB, r.maxB)
	if ra := sink.RetryAfter(err); ra > wait {
		wait = min(ra, r.maxB)
	}
	q.wq.AddAfter(key, wait)
}

// giveUp settles a state for good after at's attempts (only a redelivery or resend sends it again) and tells
// the target, which dead-letters it.
func (q *destQueue) giveUp(key objectKey, at attemptState, err error, obj client.Object, rv uint64) {
	q.mu.Lock()
	given := at
	given.given = true
	q.attempts[key] = given
	q.mu.Unlock()
	q.settle(key, rv)
	q.m.deliveries.WithLabelValues("gave_up").Inc()
	q.t.gaveUp(key, obj, at, err)
}

// lastError is the last delivery error the queue saw.
func (q *destQueue) lastError() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.health.lastError
}

// setCondition writes the ProjectionFailed condition of an object, re-reading it on a conflict.
func (q *destQueue) setCondition(key objectKey, cond metav1.Condition) {
	backoff := wait.Backoff{Steps: 6, Duration: 50 * time.Millisecond, Factor: 2, Jitter: 0.2}
	err := retry.RetryOnConflict(backoff, func() error {
		obj := key.kind.newObject()
		if err := q.d.Cache.Get(q.ctx, key.NamespacedName, obj); err != nil {
			return err
		}
		before := obj.DeepCopyObject().(client.Object)
		cond.ObservedGeneration = obj.GetGeneration()
		if !apimeta.SetStatusCondition(conditionsOf(obj), cond) {
			return nil
		}
		return q.d.Client.Status().Patch(q.ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), fieldOwner)
	})
	if client.IgnoreNotFound(err) != nil && q.ctx.Err() == nil {
		logf.FromContext(q.ctx).Error(err, "Writing the ProjectionFailed condition", "object", key.NamespacedName, "destination", q.String())
	}
}

func sequenceOf(obj client.Object) int64 {
	switch o := obj.(type) {
	case *cardsv1alpha1.Card:
		return o.Status.StateSequence
	case *cardsv1alpha1.CardTransaction:
		return o.Status.StateSequence
	}
	return 0
}

func conditionsOf(obj client.Object) *[]metav1.Condition {
	switch o := obj.(type) {
	case *cardsv1alpha1.Card:
		return &o.Status.Conditions
	case *cardsv1alpha1.CardTransaction:
		return &o.Status.Conditions
	}
	return &[]metav1.Condition{}
}
