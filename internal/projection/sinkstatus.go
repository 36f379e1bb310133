package projection

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// listNamespace lists the cards and transactions of a namespace from the cache.
func (d *Dispatcher) listNamespace(ctx context.Context, namespace string) (*cardsv1alpha1.CardList, *cardsv1alpha1.CardTransactionList, error) {
	cards, txns := &cardsv1alpha1.CardList{}, &cardsv1alpha1.CardTransactionList{}
	ns := client.InNamespace(namespace)
	if err := d.Cache.List(ctx, cards, ns, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, err
	}
	if err := d.Cache.List(ctx, txns, ns, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, err
	}
	return cards, txns, nil
}

// requeue queues again, for s only, the current state of every object of its namespace that keep selects;
// force sends a state the sink was already sent. It returns how many were queued.
func (d *Dispatcher) requeue(ctx context.Context, s *subscription, force bool, keep func(kind, client.Object) bool) (int64, error) {
	var cards *cardsv1alpha1.CardList
	var txns *cardsv1alpha1.CardTransactionList
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		cards, txns, err = d.listNamespace(ctx, s.key.Namespace)
		if err != nil {
			logf.FromContext(ctx).Info("Listing what a CardEventSink is owed failed; trying again", "cardEventSink", s.key, "error", err.Error())
		}
		return err == nil, nil
	})
	if err != nil {
		return 0, err
	}
	var n int64
	for i := range cards.Items {
		if c := &cards.Items[i]; keep(kindCard, c) {
			s.q.enqueue(objectKey{kindCard, client.ObjectKeyFromObject(c)}, resourceVersion(c), false, force)
			n++
		}
	}
	for i := range txns.Items {
		if t := &txns.Items[i]; keep(kindTransaction, t) {
			s.q.enqueue(objectKey{kindTransaction, client.ObjectKeyFromObject(t)}, resourceVersion(t), false, force)
			n++
		}
	}
	return n, nil
}

// backfillSink queues what a new sink is owed (its target drops what it does not take); its checkpoint stays
// put until all of it is queued. A sink that asked for backfill is owed the current state of every object of
// its namespace. Any other is owed the changes since its creation, and those made before its queue existed
// were routed to no queue: the informers may hand on a card's change before the sink's creation.
func (d *Dispatcher) backfillSink(s *subscription) {
	// A backfilling sink starts from no checkpoint (0), so every object is newer than its start.
	n, err := d.requeue(s.q.ctx, s, false, func(k kind, obj client.Object) bool { return resourceVersion(obj) > s.q.start[k] })
	if err != nil {
		return // shut down
	}
	s.q.backfilling.Store(false)
	logf.FromContext(s.q.ctx).Info("CardEventSink backfill queued", "cardEventSink", s.key, "objects", n)
}

// actOnAnnotations runs the replay and dead-letter resend the sink's annotations ask for, once per value, and
// removes the annotation.
func (d *Dispatcher) actOnAnnotations(ctx context.Context, s *subscription) {
	d.mu.Lock()
	cs, good := s.obj, s.good != nil
	d.mu.Unlock()
	if !good {
		return // not configured yet: acted on once it is
	}
	for _, a := range []string{cardsv1alpha1.AnnotationReplayFrom, cardsv1alpha1.AnnotationResendDeadLetters} {
		val, ok := cs.Annotations[a]
		d.mu.Lock()
		done := s.acted[a] == val
		if !ok {
			delete(s.acted, a)
		}
		d.mu.Unlock()
		if !ok || done {
			continue
		}
		var err error
		if a == cardsv1alpha1.AnnotationReplayFrom {
			err = d.replay(ctx, s, val)
		} else {
			d.resendDeadLetters(ctx, s)
		}
		if err != nil {
			d.Recorder.Eventf(cs, nil, corev1.EventTypeWarning, "ReplayRefused", "Replay", "%s", err.Error())
		}
		d.mu.Lock()
		s.acted[a] = val
		d.mu.Unlock()
		patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+a+`":null}}}`))
		if err := d.Client.Patch(ctx, cs.DeepCopy(), patch, fieldOwner); client.IgnoreNotFound(err) != nil {
			logf.FromContext(ctx).Info("Removing a CardEventSink annotation failed", "cardEventSink", s.key, "annotation", a, "error", err.Error())
		}
	}
}

// replay queues again the current state of every object whose last event was received at or after from.
func (d *Dispatcher) replay(ctx context.Context, s *subscription, value string) error {
	from, err := time.Parse(time.RFC3339Nano, value)
	if err != nil {
		return fmt.Errorf("%s=%q is not an RFC 3339 time: %w", cardsv1alpha1.AnnotationReplayFrom, value, err)
	}
	n, err := d.requeue(ctx, s, true, func(k kind, obj client.Object) bool {
		return !observedAt(obj, time.Time{}).Before(from) && d.routes(s, k, obj)
	})
	if err != nil {
		return err
	}
	d.mu.Lock()
	s.replay = &cardsv1alpha1.ReplayStatus{From: &metav1.Time{Time: from.UTC()}, Queued: n, Time: ptrTime(d.Now().UTC())}
	d.mu.Unlock()
	d.Recorder.Eventf(s.obj, nil, corev1.EventTypeNormal, "Replay", "Replay", "queued %d objects received since %s", n, from.UTC().Format(time.RFC3339))
	return nil
}

// routes reports whether s's configuration routes obj (its event type, its card's labels), as a change is
// routed: the filter is left to the delivery. status.replay.queued counts only these.
func (d *Dispatcher) routes(s *subscription, k kind, obj client.Object) bool {
	info, ok := d.cardOf(k, obj)
	d.mu.Lock()
	defer d.mu.Unlock()
	c := s.good
	return ok && c != nil && c.wants(c.eventType(k, obj)) && c.selector.Matches(labels.Set(info.labels))
}

// resendDeadLetters queues the current state of each dead-lettered object again, at its resourceVersion, so
// the checkpoint stays below it until it is delivered. A letter stays listed until its object is delivered or
// dead-lettered again, so a leader change meanwhile loses neither the state nor the record of it; a letter
// whose object was deleted is dropped, as nothing is left to send.
func (d *Dispatcher) resendDeadLetters(ctx context.Context, s *subscription) {
	d.mu.Lock()
	letters := slices.Clone(s.deadLetters)
	d.mu.Unlock()
	queued, gone := 0, map[objectKey]bool{}
	for _, dl := range letters {
		key := deadLetterKey(s.key.Namespace, dl)
		obj := key.kind.newObject()
		if err := d.Cache.Get(ctx, key.NamespacedName, obj); err != nil {
			if apierrors.IsNotFound(err) {
				gone[key] = true
			}
			continue // unreadable: the letter stays listed for another resend
		}
		s.q.enqueue(key, resourceVersion(obj), false, true)
		queued++
	}
	if len(gone) > 0 {
		d.mu.Lock()
		s.setLetters(s.lettersBut(func(k objectKey) bool { return gone[k] }))
		d.mu.Unlock()
	}
	d.Recorder.Eventf(s.obj, nil, corev1.EventTypeNormal, "Resend", "Resend",
		"queued %d dead letters again (%d dropped: their objects were deleted)", queued, len(gone))
}

// deadLetterKey is the object a dead letter of a sink in namespace is about.
func deadLetterKey(namespace string, dl cardsv1alpha1.DeadLetter) objectKey {
	k := kindCard
	if dl.Kind == "CardTransaction" {
		k = kindTransaction
	}
	return objectKey{k, types.NamespacedName{Namespace: namespace, Name: dl.Name}}
}

// sinkStatus is the status the dispatcher writes for s (under d.mu).
func (d *Dispatcher) sinkStatus(s *subscription, seen [kinds]uint64, unresolved uint64) cardsv1alpha1.CardEventSinkStatus {
	p := s.q.progress(seen, unresolved)
	st := cardsv1alpha1.CardEventSinkStatus{Conditions: s.conditions(), ObservedGeneration: s.obj.Generation, State: p.state,
		Delivered: s.delivered.Load(), Failed: s.failed.Load(), Filtered: s.filtered.Load(), DeadLettered: s.deadLettered.Load(),
		Pending: p.pending, LagSeconds: int64(p.lag.Seconds()), OldestPendingTime: ptrTime(p.oldest), Checkpoint: p.checkpoint,
		LastDeliveryTime: ptrTime(p.lastDelivery), LastFailureTime: ptrTime(p.lastFailure), LastError: p.lastError,
		DeadLetters: s.deadLetters, Replay: s.replay}
	if st.LastError == "" {
		st.LastError = s.filterError
	}
	if s.good == nil && s.notReady == nil {
		st.Checkpoint = s.obj.Status.Checkpoint // not started: nothing moved
	}
	return st
}

// sinkStatusDue reports whether st must be written over cs's status: at once when its state, readiness, dead
// letters or replay changed, after the routine interval when only progress did.
func sinkStatusDue(cs *cardsv1alpha1.CardEventSink, st *cardsv1alpha1.CardEventSinkStatus, routine bool) bool {
	was := &cs.Status
	if was.State != st.State || was.ObservedGeneration != st.ObservedGeneration || len(was.DeadLetters) != len(st.DeadLetters) ||
		!equality.Semantic.DeepEqual(was.Conditions, st.Conditions) || !equality.Semantic.DeepEqual(was.Replay, st.Replay) ||
		was.LastError != st.LastError {
		return true
	}
	return routine && !equality.Semantic.DeepEqual(*was, *st)
}

// writeSinkStatuses writes the status of the sinks whose status is due.
func (d *Dispatcher) writeSinkStatuses(ctx context.Context, seen [kinds]uint64, unresolved uint64) {
	type work struct {
		key types.NamespacedName
		st  cardsv1alpha1.CardEventSinkStatus
	}
	var todo []work
	d.mu.Lock()
	for _, ns := range d.sinks {
		for _, s := range ns {
			st := d.sinkStatus(s, seen, unresolved)
			routine := d.Now().Sub(s.written) >= routineEvery*d.StatusInterval
			if sinkStatusDue(s.obj, &st, routine) {
				s.written = d.Now()
				todo = append(todo, work{s.key, st})
			}
		}
	}
	d.mu.Unlock()
	for _, w := range todo {
		// A merge patch of the whole status: every field of it is the dispatcher's, and null clears the
		// dead letters once resent.
		body, err := json.Marshal(map[string]any{"status": sinkStatusPatch(w.st)})
		if err != nil {
			continue
		}
		cs := &cardsv1alpha1.CardEventSink{}
		cs.Namespace, cs.Name = w.key.Namespace, w.key.Name
		err = d.Client.Status().Patch(ctx, cs, client.RawPatch(types.MergePatchType, body), fieldOwner)
		if client.IgnoreNotFound(err) != nil {
			logf.FromContext(ctx).Info("Writing a CardEventSink's status failed; trying again", "cardEventSink", w.key, "error", err.Error())
		}
	}
}

// sinkStatusPatch is st with explicit nulls for what is empty, so the merge patch removes it.
func sinkStatusPatch(st cardsv1alpha1.CardEventSinkStatus) map[string]any {
	data, _ := json.Marshal(st)
	m := map[string]any{}
	_ = json.Unmarshal(data, &m)
	for _, f := range []string{"deadLetters", "replay", "lastError", "oldestPendingTime", "lagSeconds", "pending"} {
		if _, ok := m[f]; !ok {
			m[f] = nil
		}
	}
	return m
}
