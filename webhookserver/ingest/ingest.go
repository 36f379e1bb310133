// Package ingest applies normalized events to Cards and CardTransactions through the API server.
//
// Every write is idempotent and ordered: object names are derived from provider IDs, status holds absolute
// values, each group of facts keeps the provider time that set it and an older event never overwrites a
// newer one, and writes carry a resourceVersion precondition (optimistic concurrency), retried on conflict.
// A duplicate callback therefore changes nothing, on any replica.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/totals"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// FieldOwner is the field manager of the receiver's writes.
const FieldOwner = client.FieldOwner("cardplane-receiver")

// Ingester writes events. Client reads from the manager's cache; APIReader reads the API server directly
// when the cache may be behind (after a conflict or a create by another replica).
type Ingester struct {
	Client    client.Client
	APIReader client.Reader
}

// Result says what an event did.
type Result struct {
	// Changed is false for a duplicate or an event older than what is stored: nothing was written.
	Changed bool
	// Cards the facts were applied to (one, or every card of a holder for holder-level facts).
	Cards []*cardsv1alpha1.Card
	// Holder the event named, if any.
	Holder *cardsv1alpha1.CardHolder
	// Transaction written, if the event carried one.
	Transaction *cardsv1alpha1.CardTransaction
	// Orphan is a failure that names neither a card nor a holder: nothing can hold it, so the receiver records
	// it as an endpoint Event and a counter.
	Orphan *event.Failure
}

// ErrNameTaken is an object name another provider ID holds under both its readable and its hashed form.
var ErrNameTaken = errors.New("the name belongs to another provider ID")

// ErrNoIdentity is an event that names neither a card nor a card holder.
var ErrNoIdentity = errors.New("event names neither a card nor a card holder")

// Apply writes one event. An error means nothing may be acknowledged: the provider must retry.
func (in *Ingester) Apply(ctx context.Context, ep *endpointconfig.Resolved, ev *event.Event, received time.Time) (*Result, error) {
	at := ev.Ordered(received).UTC().Truncate(time.Microsecond)
	received = received.UTC().Truncate(time.Second)
	res := &Result{}
	switch {
	case ev.CardID == "" && ev.HolderID != "":
		return res, in.applyToHolder(ctx, ep, ev, at, received, res)
	case ev.CardID == "" && ev.Failure != nil:
		res.Orphan = ev.Failure
		return res, nil
	case ev.CardID == "":
		return nil, ErrNoIdentity
	}

	card, err := in.ensureCard(ctx, ep, ev)
	if err != nil {
		return nil, err
	}
	res.Cards = []*cardsv1alpha1.Card{card}
	holder, holderChanged, err := in.holderFor(ctx, ep, ev, card.Name, at, received)
	if err != nil {
		return nil, err
	}
	res.Holder = holder
	applyToCard := func(st *cardsv1alpha1.CardStatus) bool {
		changed := applyCard(st, ev, at, received)
		return linkHolder(st, holder) || changed
	}
	tx := ev.Transaction
	fillOnly := false
	if tx == nil && ev.Authorization != nil {
		// An authorization request opens a pending transaction; its later pushes (clearing, reversal) win.
		tx, fillOnly = fromAuthorization(ev.Authorization), true
	}
	if tx == nil {
		res.Changed, err = in.updateCard(ctx, card, applyToCard)
		res.Changed = res.Changed || holderChanged
		return res, err
	}
	txn, err := in.ensureTransaction(ctx, ep, card, tx.ID)
	if err != nil {
		return nil, err
	}
	apply := func(st *cardsv1alpha1.CardTransactionStatus) bool {
		return applyTransaction(st, ev, tx, at, received, fillOnly)
	}
	// A transaction this event settles is added to the card's running totals in the card's own write, and
	// marked counted in the transaction's: three writes for a new settled transaction, none left for the
	// controllers. The card's ring of recently counted transactions keeps a retry from counting it twice.
	settling := txn.DeepCopy()
	apply(&settling.Status)
	count := totals.Settled(settling.Status.Phase) && !totals.Counted(settling)
	cardChanged, err := in.updateCard(ctx, card, func(st *cardsv1alpha1.CardStatus) bool {
		changed := applyToCard(st)
		if count && totals.Add(st, settling) {
			changed = true
		}
		return changed
	})
	if err != nil {
		return nil, err
	}
	txnChanged, err := in.updateTransaction(ctx, txn, func(st *cardsv1alpha1.CardTransactionStatus) bool {
		changed := apply(st)
		if count && st.CountedAt == nil && totals.Settled(st.Phase) {
			now := metav1.NewTime(received)
			st.CountedAt, changed = &now, true
		}
		return changed
	})
	if err != nil {
		return nil, err
	}
	res.Changed, res.Transaction = cardChanged || txnChanged || holderChanged, txn
	return res, nil
}

func fromAuthorization(a *event.AuthorizationRequest) *event.Transaction {
	amt := a.Amount
	return &event.Transaction{ID: a.TransactionID, Type: cardsv1alpha1.TransactionAuthorization,
		Phase: cardsv1alpha1.TransactionPending, Direction: cardsv1alpha1.Debit, Amount: &amt,
		Merchant: a.Merchant, Channel: a.Channel, AuthorizationID: a.AuthorizationID, References: a.References}
}

// get reads from the cache and, when the cache has not seen the object yet, from the API server.
func (in *Ingester) get(ctx context.Context, key client.ObjectKey, obj client.Object) error {
	err := in.Client.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) && in.APIReader != nil {
		err = in.APIReader.Get(ctx, key, obj)
	}
	return err
}

func (in *Ingester) fresh(ctx context.Context, obj client.Object) error {
	r := in.APIReader
	if r == nil {
		r = in.Client
	}
	return r.Get(ctx, client.ObjectKeyFromObject(obj), obj)
}

func labelValue(s string) string {
	if len(s) > 63 {
		return ""
	}
	return s
}

func (in *Ingester) ensureCard(ctx context.Context, ep *endpointconfig.Resolved, ev *event.Event) (*cardsv1alpha1.Card, error) {
	ref := cardsv1alpha1.NamespacedObjectReference{Namespace: ep.Endpoint.Namespace, Name: ep.Endpoint.Name}
	card, err := ensure(ctx, in, ep.TargetNamespace, cardNames(ref.Namespace, ref.Name, string(ep.Endpoint.UID), ev.CardID),
		func() *cardsv1alpha1.Card { return &cardsv1alpha1.Card{} },
		func(c *cardsv1alpha1.Card) bool { return ours(c, ref, ev.CardID) },
		func(name string) (*cardsv1alpha1.Card, error) {
			card := &cardsv1alpha1.Card{
				ObjectMeta: metav1.ObjectMeta{Namespace: ep.TargetNamespace, Name: name, Labels: map[string]string{
					cardsv1alpha1.LabelProvider: string(ep.Endpoint.Spec.Provider),
				}},
				Spec: cardsv1alpha1.CardSpec{EndpointRef: ref, Provider: ep.Endpoint.Spec.Provider, ProviderCardID: ev.CardID},
			}
			if v := labelValue(ep.Endpoint.Name); v != "" {
				card.Labels[cardsv1alpha1.LabelEndpoint] = v
			}
			for k, v := range wantedLabels(ep, ev) {
				card.Labels[k] = v
			}
			return card, nil
		})
	if err != nil {
		return nil, err
	}
	return card, in.ensureLabels(ctx, card, wantedLabels(ep, ev))
}

// wantedLabels are the labels an endpoint's card carries beside the identity ones: the endpoint's cardLabels,
// so rule sets govern the card from its first authorization, and the hash of its holder.
func wantedLabels(ep *endpointconfig.Resolved, ev *event.Event) map[string]string {
	want := make(map[string]string, len(ep.Endpoint.Spec.CardLabels)+1)
	for k, v := range ep.Endpoint.Spec.CardLabels {
		want[k] = string(v)
	}
	if ev.HolderID != "" {
		want[cardsv1alpha1.LabelHolder] = HolderLabel(ev.HolderID)
	}
	return want
}

// ensure finds the object for a provider ID under one of its names, or creates it. A readable name taken by
// another ID sends the object to the hashed name. The first look is in the cache only: a new object costs one
// create, and a create that finds the object already there (created by another replica, or not yet in this
// cache) looks again, this time at the API server.
func ensure[T client.Object](ctx context.Context, in *Ingester, ns string, n objectNames,
	empty func() T, ours func(T) bool, build func(name string) (T, error)) (T, error) {
	var zero T
	lookup := func(ctx context.Context, key client.ObjectKey, obj client.Object) error {
		return in.Client.Get(ctx, key, obj)
	}
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			lookup = in.get
		}
		found, target, err := find(ctx, lookup, ns, n, empty, ours)
		if err != nil || target == "" {
			return found, err
		}
		obj, err := build(target)
		if err != nil {
			return zero, err
		}
		err = in.Client.Create(ctx, obj, FieldOwner)
		if err == nil {
			return obj, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return zero, fmt.Errorf("creating %s/%s: %w", ns, target, err)
		}
	}
	return zero, fmt.Errorf("%s/%s: gave up after repeated create races", ns, n.readable)
}

// find looks for the object under each of its names. It returns the object when one is ours (and no target),
// or else the name to create it under: the readable one, or the hashed one when another ID holds the readable
// one.
func find[T client.Object](ctx context.Context, lookup func(context.Context, client.ObjectKey, client.Object) error,
	ns string, n objectNames, empty func() T, ours func(T) bool) (found T, target string, err error) {
	var zero T
	target = n.readable
	for _, name := range n.all() {
		obj := empty()
		err := lookup(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)
		switch {
		case err == nil && ours(obj):
			return obj, "", nil
		case apierrors.IsNotFound(err):
		case err != nil:
			return zero, "", fmt.Errorf("reading %s/%s: %w", ns, name, err)
		case name == n.readable:
			target = n.hashed
		case name == n.hashed:
			return zero, "", fmt.Errorf("%s/%s: %w", ns, name, ErrNameTaken)
		}
	}
	return zero, target, nil
}

func ours(c *cardsv1alpha1.Card, ref cardsv1alpha1.NamespacedObjectReference, cardID string) bool {
	return c.Spec.ProviderCardID == cardID && c.Spec.EndpointRef == ref
}

// ensureLabels adds the wanted labels a card lacks (or has with another value), in one patch; other labels are
// left alone.
func (in *Ingester) ensureLabels(ctx context.Context, card *cardsv1alpha1.Card, want map[string]string) error {
	missing := false
	for k, v := range want {
		missing = missing || card.Labels[k] != v
	}
	if !missing {
		return nil
	}
	before := card.DeepCopy()
	if card.Labels == nil {
		card.Labels = map[string]string{}
	}
	maps.Copy(card.Labels, want)
	if err := in.Client.Patch(ctx, card, client.MergeFrom(before), FieldOwner); err != nil {
		return fmt.Errorf("labelling card %s/%s: %w", card.Namespace, card.Name, err)
	}
	return nil
}

// conflictBackoff paces re-reads after a write conflict. Writers of one hot card (every replica, provider
// retries, authorizations) can conflict several times in a row: client-go's DefaultRetry (5 tries within
// about 50 ms) gave up under such load and the callback was answered 5xx. Growing, jittered waits spread the
// writers apart; the caller's deadline (the receiver's StoreTimeout) still bounds the whole.
var conflictBackoff = wait.Backoff{Steps: 12, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 1, Cap: 400 * time.Millisecond}

// updateCard applies mutate to the card's status and writes it (patchStatus); a change moves stateSequence.
func (in *Ingester) updateCard(ctx context.Context, card *cardsv1alpha1.Card, mutate func(*cardsv1alpha1.CardStatus) bool) (bool, error) {
	return in.patchStatus(ctx, "card", card, func() bool {
		if !mutate(&card.Status) {
			return false
		}
		card.Status.StateSequence++
		return true
	})
}

// patchStatus runs mutate on obj (it changes obj's status and reports whether it did) and writes the change
// with a resourceVersion precondition, re-reading obj and running mutate again on conflict.
// what names the kind in errors.
func (in *Ingester) patchStatus(ctx context.Context, what string, obj client.Object, mutate func() bool) (bool, error) {
	changed, first := false, true
	err := retry.RetryOnConflict(conflictBackoff, func() error {
		if !first {
			if err := in.fresh(ctx, obj); err != nil {
				return err
			}
		}
		first = false
		before := obj.DeepCopyObject().(client.Object)
		if changed = mutate(); !changed {
			return nil
		}
		return in.Client.Status().Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), FieldOwner)
	})
	if err != nil {
		return false, fmt.Errorf("writing status of %s %s/%s: %w", what, obj.GetNamespace(), obj.GetName(), err)
	}
	return changed, nil
}

func (in *Ingester) ensureTransaction(ctx context.Context, ep *endpointconfig.Resolved, card *cardsv1alpha1.Card, txID string) (*cardsv1alpha1.CardTransaction, error) {
	if txID == "" {
		return nil, errors.New("transaction has no ID")
	}
	endpoint := ep.Endpoint.Namespace + "/" + ep.Endpoint.Name
	return ensure(ctx, in, card.Namespace, transactionNames(ep.Endpoint.Namespace, ep.Endpoint.Name, string(ep.Endpoint.UID), txID),
		func() *cardsv1alpha1.CardTransaction { return &cardsv1alpha1.CardTransaction{} },
		func(t *cardsv1alpha1.CardTransaction) bool {
			// Objects applied by hand (the samples) may carry only the endpoint label.
			owner := t.Annotations[cardsv1alpha1.AnnotationEndpoint]
			return t.Spec.ProviderTransactionID == txID &&
				(owner == endpoint || (owner == "" && t.Labels[cardsv1alpha1.LabelEndpoint] == ep.Endpoint.Name))
		},
		func(name string) (*cardsv1alpha1.CardTransaction, error) {
			txn := &cardsv1alpha1.CardTransaction{
				ObjectMeta: metav1.ObjectMeta{Namespace: card.Namespace, Name: name,
					Labels: map[string]string{
						cardsv1alpha1.LabelProvider: string(ep.Endpoint.Spec.Provider),
						cardsv1alpha1.LabelCard:     card.Name,
					},
					Annotations: map[string]string{cardsv1alpha1.AnnotationEndpoint: endpoint}},
				Spec: cardsv1alpha1.CardTransactionSpec{CardRef: cardsv1alpha1.LocalObjectReference{Name: card.Name},
					Provider: ep.Endpoint.Spec.Provider, ProviderTransactionID: txID},
			}
			if v := labelValue(ep.Endpoint.Name); v != "" {
				txn.Labels[cardsv1alpha1.LabelEndpoint] = v
			}
			// Owned by its card: deleting the card garbage-collects its history.
			return txn, controllerutil.SetOwnerReference(card, txn, in.Client.Scheme())
		})
}

func (in *Ingester) updateTransaction(ctx context.Context, txn *cardsv1alpha1.CardTransaction, mutate func(*cardsv1alpha1.CardTransactionStatus) bool) (bool, error) {
	return in.patchStatus(ctx, "transaction", txn, func() bool {
		if !mutate(&txn.Status) {
			return false
		}
		txn.Status.StateSequence++
		return true
	})
}

// RecordDecision writes an authorization decision to its transaction.
func (in *Ingester) RecordDecision(ctx context.Context, txn *cardsv1alpha1.CardTransaction, d cardsv1alpha1.AuthorizationDecision, at time.Time) error {
	decided := metav1.NewTime(at)
	d.DecidedAt = &decided
	_, err := in.updateTransaction(ctx, txn, func(st *cardsv1alpha1.CardTransactionStatus) bool {
		if st.Authorization != nil {
			return false // the first decision stands; a replayed request does not re-decide
		}
		st.Authorization = d.DeepCopy()
		return true
	})
	return err
}

// FindCard returns an endpoint's card for a provider card ID from the cache, or nil when there is none yet.
func (in *Ingester) FindCard(ctx context.Context, ep *endpointconfig.Resolved, cardID string) (*cardsv1alpha1.Card, error) {
	for _, name := range cardNames(ep.Endpoint.Namespace, ep.Endpoint.Name, string(ep.Endpoint.UID), cardID).all() {
		card := &cardsv1alpha1.Card{}
		err := in.Client.Get(ctx, client.ObjectKey{Namespace: ep.TargetNamespace, Name: name}, card)
		if err == nil && card.Spec.ProviderCardID == cardID && card.Spec.EndpointRef.Namespace == ep.Endpoint.Namespace && card.Spec.EndpointRef.Name == ep.Endpoint.Name {
			return card, nil
		}
		if client.IgnoreNotFound(err) != nil {
			return nil, err
		}
	}
	return nil, nil
}
