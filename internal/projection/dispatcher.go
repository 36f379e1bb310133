package projection

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
)

// kind is the kind of a delivered object.
type kind uint8

const (
	kindCard kind = iota
	kindTransaction
	kinds
)

func (k kind) eventType() cardsv1alpha1.DestinationEventType {
	if k == kindCard {
		return cardsv1alpha1.EventCardUpdated
	}
	return cardsv1alpha1.EventTransactionUpdated
}

func (k kind) newObject() client.Object {
	if k == kindCard {
		return &cardsv1alpha1.Card{}
	}
	return &cardsv1alpha1.CardTransaction{}
}

// cardInfo is what routing needs of a card.
type cardInfo struct {
	endpoint types.NamespacedName
	uid      types.UID
	labels   map[string]string
}

// cardOf is the card of obj: itself, or a transaction's card; false when the card is not known (yet).
func (d *Dispatcher) cardOf(k kind, obj client.Object) (cardInfo, bool) {
	if k == kindCard {
		ref := obj.(*cardsv1alpha1.Card).Spec.EndpointRef
		return cardInfo{endpoint: types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, uid: obj.GetUID(), labels: obj.GetLabels()}, true
	}
	txn := obj.(*cardsv1alpha1.CardTransaction)
	d.mu.Lock()
	defer d.mu.Unlock()
	info, ok := d.cards[types.NamespacedName{Namespace: txn.Namespace, Name: txn.Spec.CardRef.Name}]
	return info, ok
}

// objectKey names one Card or CardTransaction.
type objectKey struct {
	kind kind
	types.NamespacedName
}

// Dispatcher delivers the latest state of every Card and CardTransaction to the destinations of its
// WebhookEndpoint. It follows the objects through the manager's informers (no reconcile, no API read per
// delivery) and feeds one queue per destination, each with its own workers (maxInFlight), retry budget,
// timeout and circuit breaker: a slow or dead destination delays only itself. A queue never works on one
// object twice at once and always sends the object's latest state, so one object's deliveries arrive in order
// and a burst of changes is sent once. How far each destination was served is checkpointed in the endpoint's
// status (a resourceVersion per kind), so a restarted controller resumes where it stopped instead of
// resending every object.
type Dispatcher struct {
	// Cache holds the Cards, CardTransactions and WebhookEndpoints (the manager's cache).
	Cache cache.Cache
	// Client writes the endpoints' delivery status, the ProjectionFailed condition and the redeliver
	// annotation's removal.
	Client client.Client
	// Secrets reads the Secrets of the destinations and sinks (signing keys, headers, certificates).
	Secrets client.Reader
	// Network is the policy of every outbound connection.
	Network *Network
	// SinkPolicy is how the CardEventSinks' transports are built.
	SinkPolicy SinkPolicy
	Recorder   events.EventRecorder
	Now        func() time.Time
	// StatusInterval is how often the endpoints' delivery status is written when it changed (default 2 s).
	StatusInterval time.Duration

	mu        sync.Mutex
	ctx       context.Context
	endpoints map[types.NamespacedName]*endpointQueues
	// cards maps each card to its endpoint, UID and labels, so a transaction is routed without reading its card.
	cards map[types.NamespacedName]cardInfo
	// sinks are the CardEventSinks, by namespace and name: a change is routed to its namespace's only.
	sinks      map[string]map[string]*subscription
	sinkConfig workqueue.TypedDelayingInterface[types.NamespacedName]
	// unresolved are transactions seen before their card, by the resourceVersion they were seen at: the
	// checkpoints stay below them until they are routed.
	unresolved map[objectKey]uint64
	seen       [kinds]atomic.Uint64 // the highest resourceVersion handled, per kind
	// disorderUntil holds, per kind, until when checkpoints stay where they are: an informer that lists
	// again (its watch expired) replays objects in key order, not resourceVersion order, so the highest
	// version seen says nothing about the ones still to come.
	disorderUntil [kinds]atomic.Int64
	// endpointsSynced: the endpoints' initial list was handled; a queue made after it is backfilled.
	endpointsSynced atomic.Bool
	stopped         bool // under mu: no queue is made any more

	retryRoute workqueue.TypedRateLimitingInterface[objectKey]
	redeliver  workqueue.TypedRateLimitingInterface[objectKey]
	// forced holds, under mu, the redeliver annotation value each object was last redelivered for: the
	// updates that follow (the ProjectionFailed condition cleared while the annotation is still on) are not
	// new requests and must not send the same state again.
	forced map[objectKey]string
}

// endpointQueues are the destination queues of one endpoint.
type endpointQueues struct {
	ep      *cardsv1alpha1.WebhookEndpoint
	queues  map[string]*destQueue
	written time.Time // when its status was last written
}

// NeedLeaderElection makes only the leader deliver.
func (d *Dispatcher) NeedLeaderElection() bool { return true }

// Start follows the informers until ctx ends: endpoints first, so every object finds its queues.
func (d *Dispatcher) Start(ctx context.Context) error {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.StatusInterval <= 0 {
		d.StatusInterval = 2 * time.Second
	}
	d.mu.Lock()
	d.ctx = ctx
	d.endpoints = map[types.NamespacedName]*endpointQueues{}
	d.cards = map[types.NamespacedName]cardInfo{}
	d.sinks = map[string]map[string]*subscription{}
	if d.SinkPolicy.RecheckInterval <= 0 {
		d.SinkPolicy.RecheckInterval = 10 * time.Second
	}
	d.unresolved = map[objectKey]uint64{}
	d.mu.Unlock()
	d.retryRoute = workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[objectKey](100*time.Millisecond, 5*time.Second))
	d.redeliver = workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[objectKey](time.Second, time.Minute))
	defer d.retryRoute.ShutDown()
	defer d.redeliver.ShutDown()
	d.sinkConfig = workqueue.NewTypedDelayingQueue[types.NamespacedName]()
	defer d.sinkConfig.ShutDown()
	defer d.shutDownQueues()

	handlers := []struct {
		obj client.Object
		h   toolscache.ResourceEventHandler
	}{
		{&cardsv1alpha1.WebhookEndpoint{}, toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { d.onEndpoint(o, false) },
			UpdateFunc: func(_, o any) { d.onEndpoint(o, false) },
			DeleteFunc: func(o any) { d.onEndpoint(o, true) },
		}},
		{&cardsv1alpha1.CardEventSink{}, toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { d.onSink(o, false) },
			UpdateFunc: func(_, o any) { d.onSink(o, false) },
			DeleteFunc: func(o any) { d.onSink(o, true) },
		}},
		{&cardsv1alpha1.Card{}, toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { d.onCard(nil, o) },
			UpdateFunc: d.onCard,
			DeleteFunc: func(o any) { d.onDelete(kindCard, o) },
		}},
		{&cardsv1alpha1.CardTransaction{}, toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { d.onTransaction(nil, o) },
			UpdateFunc: d.onTransaction,
			DeleteFunc: func(o any) { d.onDelete(kindTransaction, o) },
		}},
	}
	for _, h := range handlers {
		inf, err := d.Cache.GetInformer(ctx, h.obj)
		if err != nil {
			return err
		}
		reg, err := inf.AddEventHandler(h.h)
		if err != nil {
			return err
		}
		defer func() { _ = inf.RemoveEventHandler(reg) }()
		if !toolscache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
			return ctx.Err()
		}
		d.endpointsSynced.Store(true)
	}
	go d.runRetryRoute(ctx)
	go d.runRedeliver(ctx)
	go d.runSinkConfig(ctx)
	go d.runDestinationRecheck(ctx)
	d.runStatus(ctx)
	return nil
}

// shutDownQueues stops every queue, and any made later.
func (d *Dispatcher) shutDownQueues() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	for _, e := range d.endpoints {
		for _, q := range e.queues {
			stopDestination(q)
		}
	}
	for _, ns := range d.sinks {
		for _, s := range ns {
			s.q.shutDown()
			s.close()
		}
	}
}

// objectOf unwraps what an informer hands a handler.
func objectOf(o any) client.Object {
	if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	obj, _ := o.(client.Object)
	return obj
}

// resourceVersion parses an object's resourceVersion. It is opaque to clients, but every API server backed by
// etcd issues increasing integers; an unparsable one reads as 0 and is never skipped nor checkpointed past.
func resourceVersion(obj client.Object) uint64 {
	rv, _ := strconv.ParseUint(obj.GetResourceVersion(), 10, 64)
	return rv
}

// noteSeen records that an informer handler handed on every change of kind k up to rv. Only the handlers
// call it: they see each kind's changes in resourceVersion order, except when an informer lists again.
func (d *Dispatcher) noteSeen(k kind, rv uint64) {
	for {
		cur := d.seen[k].Load()
		if rv < cur {
			d.disorderUntil[k].Store(d.Now().Add(disorderHold).UnixNano())
		}
		if rv <= cur || d.seen[k].CompareAndSwap(cur, rv) {
			return
		}
	}
}

// disorderHold is how long checkpoints of a kind stay put after its informer handed on an older version.
const disorderHold = 30 * time.Second

// frozen reports whether checkpoints of kind k must not move now.
func (d *Dispatcher) frozen(k kind) bool {
	return d.Now().UnixNano() < d.disorderUntil[k].Load()
}

// onEndpoint creates, updates and removes an endpoint's destination queues.
func (d *Dispatcher) onEndpoint(o any, deleted bool) {
	ep, ok := objectOf(o).(*cardsv1alpha1.WebhookEndpoint)
	if !ok {
		return
	}
	key := client.ObjectKeyFromObject(ep)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	e := d.endpoints[key]
	if deleted {
		if e != nil {
			for _, q := range e.queues {
				stopDestination(q)
			}
			delete(d.endpoints, key)
		}
		return
	}
	if e == nil {
		e = &endpointQueues{queues: map[string]*destQueue{}}
		d.endpoints[key] = e
	}
	e.ep = ep
	wanted := map[string]bool{}
	for i := range ep.Spec.Destinations {
		dest := &ep.Spec.Destinations[i]
		wanted[dest.Name] = true
		if q := e.queues[dest.Name]; q != nil {
			q.resize(maxInFlight(dest))
			continue
		}
		q := newDestinationQueue(d, key, dest.Name, checkpointOf(ep, dest.Name))
		e.queues[dest.Name] = q
		q.resize(maxInFlight(dest))
		if d.endpointsSynced.Load() {
			// A destination added while running receives the current state of what its endpoint wrote; its
			// checkpoint stays put until all of it is queued.
			q.backfilling.Store(true)
			go d.backfill(q, ep)
		}
	}
	for name, q := range e.queues {
		if !wanted[name] {
			stopDestination(q)
			delete(e.queues, name)
		}
	}
}

// destination returns the current spec of one destination and its endpoint; nil when it was removed.
func (d *Dispatcher) destination(endpoint types.NamespacedName, name string) (*cardsv1alpha1.WebhookEndpoint, *cardsv1alpha1.Destination) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.endpoints[endpoint]
	if e == nil {
		return nil, nil
	}
	for i := range e.ep.Spec.Destinations {
		if e.ep.Spec.Destinations[i].Name == name {
			return e.ep, &e.ep.Spec.Destinations[i]
		}
	}
	return nil, nil
}

// queuesFor returns the queues of the destinations of endpoint that want obj's current state (of kind k, in
// namespace): none when the endpoint does not write there.
func (d *Dispatcher) queuesFor(endpoint types.NamespacedName, namespace string, k kind, obj client.Object) []*destQueue {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.endpoints[endpoint]
	if e == nil || !serves(e.ep, namespace) {
		return nil
	}
	var qs []*destQueue
	for i := range e.ep.Spec.Destinations {
		dest := &e.ep.Spec.Destinations[i]
		if q := e.queues[dest.Name]; q != nil && wants(dest.EventTypes, eventTypeOf(k, obj, dest.EventTypes)) {
			qs = append(qs, q)
		}
	}
	return qs
}

func (d *Dispatcher) onCard(oldObj, newObj any) {
	card, ok := objectOf(newObj).(*cardsv1alpha1.Card)
	if !ok {
		return
	}
	ref := card.Spec.EndpointRef
	endpoint := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
	d.mu.Lock()
	d.cards[client.ObjectKeyFromObject(card)] = cardInfo{endpoint: endpoint, uid: card.UID, labels: card.Labels}
	d.mu.Unlock()
	old, _ := objectOf(oldObj).(*cardsv1alpha1.Card)
	changed := old == nil || old.UID != card.UID || old.Status.StateSequence != card.Status.StateSequence
	d.route(objectKey{kindCard, client.ObjectKeyFromObject(card)}, card, endpoint, old == nil, changed)
	d.noteSeen(kindCard, resourceVersion(card))
}

func (d *Dispatcher) onTransaction(oldObj, newObj any) {
	txn, ok := objectOf(newObj).(*cardsv1alpha1.CardTransaction)
	if !ok {
		return
	}
	old, _ := objectOf(oldObj).(*cardsv1alpha1.CardTransaction)
	changed := old == nil || old.UID != txn.UID || old.Status.StateSequence != txn.Status.StateSequence
	d.routeTransaction(txn, old == nil, changed)
	d.noteSeen(kindTransaction, resourceVersion(txn))
}

// routeTransaction routes a transaction through its card's endpoint; one seen before its card is tried again
// shortly (the two kinds arrive through different informers).
func (d *Dispatcher) routeTransaction(txn *cardsv1alpha1.CardTransaction, added, changed bool) {
	key := objectKey{kindTransaction, client.ObjectKeyFromObject(txn)}
	d.mu.Lock()
	card, known := d.cards[types.NamespacedName{Namespace: txn.Namespace, Name: txn.Spec.CardRef.Name}]
	if !known && changed {
		if _, waiting := d.unresolved[key]; !waiting {
			d.unresolved[key] = resourceVersion(txn)
		}
	}
	d.mu.Unlock()
	if !known {
		if changed {
			d.retryRoute.AddRateLimited(key)
		}
		return
	}
	d.route(key, txn, card.endpoint, added, changed)
}

// route hands a changed object to the queues of its endpoint's destinations. The redeliver annotation makes
// every destination receive the current state again. The handlers note the version seen after routing: a
// checkpoint taken once it is visible already sees the change pending.
func (d *Dispatcher) route(key objectKey, obj client.Object, endpoint types.NamespacedName, added, changed bool) {
	rv := resourceVersion(obj)
	force := d.redeliverRequested(key, obj)
	if changed || force {
		for _, q := range d.queuesFor(endpoint, obj.GetNamespace(), key.kind, obj) {
			q.enqueue(key, rv, added, force)
		}
		if info, ok := d.cardOf(key.kind, obj); ok {
			for _, q := range d.sinkQueuesFor(obj.GetNamespace(), key.kind, obj, info.labels) {
				q.enqueue(key, rv, added, force)
			}
		}
	}
	if force {
		d.redeliver.Add(key)
	}
}

// redeliverRequested reports whether obj carries a redeliver request not yet acted on: the annotation, with a
// value other than the one last acted on. Its removal forgets the value, so the same value asks again later.
func (d *Dispatcher) redeliverRequested(key objectKey, obj client.Object) bool {
	val, annotated := obj.GetAnnotations()[cardsv1alpha1.AnnotationRedeliver]
	d.mu.Lock()
	defer d.mu.Unlock()
	last, acted := d.forced[key]
	switch {
	case !annotated:
		delete(d.forced, key)
		return false
	case acted && last == val:
		return false
	}
	if d.forced == nil {
		d.forced = map[objectKey]string{}
	}
	d.forced[key] = val
	return true
}

func (d *Dispatcher) onDelete(k kind, o any) {
	obj := objectOf(o)
	if obj == nil {
		return
	}
	key := objectKey{k, client.ObjectKeyFromObject(obj)}
	d.mu.Lock()
	defer d.mu.Unlock()
	if k == kindCard {
		delete(d.cards, key.NamespacedName)
	}
	delete(d.unresolved, key)
	delete(d.forced, key)
	for _, e := range d.endpoints {
		for _, q := range e.queues {
			q.forget(key)
		}
	}
	for _, s := range d.sinks[key.Namespace] {
		s.q.forget(key)
	}
}

// runRetryRoute routes the transactions seen before their cards, for up to about a minute each.
func (d *Dispatcher) runRetryRoute(ctx context.Context) {
	for {
		key, shutdown := d.retryRoute.Get()
		if shutdown {
			return
		}
		d.retryRouteOnce(ctx, key)
		d.retryRoute.Done(key)
	}
}

func (d *Dispatcher) retryRouteOnce(ctx context.Context, key objectKey) {
	txn := &cardsv1alpha1.CardTransaction{}
	err := d.Cache.Get(ctx, key.NamespacedName, txn)
	d.mu.Lock()
	_, known := d.cards[types.NamespacedName{Namespace: key.Namespace, Name: txn.Spec.CardRef.Name}]
	d.mu.Unlock()
	switch {
	case err == nil && known:
		d.routeTransaction(txn, false, true)
	case client.IgnoreNotFound(err) != nil || (err == nil && d.retryRoute.NumRequeues(key) < 20):
		d.retryRoute.AddRateLimited(key)
		return
	case err == nil:
		logf.FromContext(ctx).Info("Not delivering a transaction whose card does not exist", "transaction", key.NamespacedName)
	}
	// Only now, once it is queued (or gone): until then the checkpoints stay below it.
	d.mu.Lock()
	delete(d.unresolved, key)
	d.mu.Unlock()
	d.retryRoute.Forget(key)
}

// runRedeliver removes the redeliver annotation of the objects whose redelivery was started.
func (d *Dispatcher) runRedeliver(ctx context.Context) {
	for {
		key, shutdown := d.redeliver.Get()
		if shutdown {
			return
		}
		obj := key.kind.newObject()
		err := d.Cache.Get(ctx, key.NamespacedName, obj)
		if err == nil {
			_, err = TakeRedeliver(ctx, d.Client, obj)
		}
		if client.IgnoreNotFound(err) != nil && d.redeliver.NumRequeues(key) < 10 {
			logf.FromContext(ctx).Info("Removing the redeliver annotation failed; trying again", "object", key.NamespacedName, "error", err.Error())
			d.redeliver.AddRateLimited(key)
		} else {
			d.redeliver.Forget(key)
		}
		d.redeliver.Done(key)
	}
}

// backfill enqueues, for a destination added while running, every object its endpoint wrote; the queue's
// checkpoint stays put until it is done.
func (d *Dispatcher) backfill(q *destQueue, ep *cardsv1alpha1.WebhookEndpoint) {
	ns := client.InNamespace(endpointconfig.TargetNamespace(ep))
	cards := &cardsv1alpha1.CardList{}
	txns := &cardsv1alpha1.CardTransactionList{}
	err := wait.PollUntilContextCancel(q.ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		err := d.Cache.List(ctx, cards, ns, client.UnsafeDisableDeepCopy)
		if err == nil {
			err = d.Cache.List(ctx, txns, ns, client.UnsafeDisableDeepCopy)
		}
		if err != nil {
			logf.FromContext(ctx).Info("Listing what a new destination is owed failed; trying again", "destination", q.String(), "error", err.Error())
		}
		return err == nil, nil
	})
	if err != nil {
		return // the queue was shut down
	}
	mine := map[string]bool{}
	for i := range cards.Items {
		c := &cards.Items[i]
		if c.Spec.EndpointRef.Namespace == ep.Namespace && c.Spec.EndpointRef.Name == ep.Name {
			mine[c.Name] = true
			q.enqueue(objectKey{kindCard, client.ObjectKeyFromObject(c)}, resourceVersion(c), false, false)
		}
	}
	for i := range txns.Items {
		t := &txns.Items[i]
		if mine[t.Spec.CardRef.Name] {
			q.enqueue(objectKey{kindTransaction, client.ObjectKeyFromObject(t)}, resourceVersion(t), false, false)
		}
	}
	q.backfilling.Store(false)
}

// checkpointOf reads the checkpoint a destination's status holds (0: none).
func checkpointOf(ep *cardsv1alpha1.WebhookEndpoint, name string) [kinds]uint64 {
	for _, s := range ep.Status.Destinations {
		if s.Name == name {
			return checkpointFrom(s.Checkpoint)
		}
	}
	return [kinds]uint64{}
}

func maxInFlight(d *cardsv1alpha1.Destination) int {
	if d.MaxInFlight > 0 {
		return int(d.MaxInFlight)
	}
	return defaultMaxInFlight
}

// String names a queue in logs.
func (q *destQueue) String() string { return q.name }
