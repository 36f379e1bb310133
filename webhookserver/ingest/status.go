package ingest

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/text"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// newer reports whether facts observed at `at` may replace facts observed at `stored` (nil: none yet).
// Equal times apply, so the later arrival of two same-time events wins and a duplicate rewrites the same values.
func newer(stored *metav1.MicroTime, at time.Time) bool {
	return stored == nil || !at.Before(stored.Time)
}

func micro(t time.Time) *metav1.MicroTime {
	m := metav1.NewMicroTime(t)
	return &m
}

// applyCard merges an event's card facts into st, each group of facts only when the event is not older than
// the facts stored. It reports whether st changed.
func applyCard(st *cardsv1alpha1.CardStatus, ev *event.Event, at, received time.Time) bool {
	before := st.DeepCopy()
	if c := ev.Card; c != nil {
		applyCardFacts(st, c, at)
		// References and amounts of an event older than the card's last one only fill keys still missing.
		latest := st.LastEvent == nil || st.LastEvent.Time == nil || !at.Before(st.LastEvent.Time.Time)
		st.ProviderFields = mergeReferences(st.ProviderFields, c.References, latest)
		st.ProviderAmounts = mergeAmounts(st.ProviderAmounts, c.Amounts, latest)
	}
	if ev.HolderID != "" {
		st.HolderID = ev.HolderID
	}
	if b := ev.Balance; b != nil && (st.Balance == nil || newer(st.Balance.ObservedAt, at)) {
		st.Balance = &cardsv1alpha1.Balance{Available: b.Available, ObservedAt: micro(at), Event: clip(ev.Type, 64)}
	}
	if k := ev.KYC; k != nil && (st.KYC == nil || newer(st.KYC.ObservedAt, at)) {
		st.KYC = &cardsv1alpha1.KYC{State: k.State, Reason: k.Reason, ProviderStatus: clip(k.ProviderStatus, 64), ObservedAt: micro(at)}
	}
	if l := ev.Logistics; l != nil && (st.Logistics == nil || newer(st.Logistics.ObservedAt, at)) {
		prev := st.Logistics
		st.Logistics = &cardsv1alpha1.Logistics{State: l.State, Carrier: l.Carrier, TrackingNumber: l.TrackingNumber, ObservedAt: micro(at)}
		if prev != nil { // later logistics events may omit the carrier details an earlier one gave
			st.Logistics.Carrier = cmp.Or(st.Logistics.Carrier, prev.Carrier)
			st.Logistics.TrackingNumber = cmp.Or(st.Logistics.TrackingNumber, prev.TrackingNumber)
		}
	}
	factsChanged := !equality.Semantic.DeepEqual(before, st)
	recordLastEvent(&st.LastEvent, ev, at, received, factsChanged)
	return factsChanged || !equality.Semantic.DeepEqual(before.LastEvent, st.LastEvent)
}

// applyCardFacts merges lifecycle and identity facts: the phase only when the event is not older than the
// phase stored; type, number and expiry always (they do not regress).
func applyCardFacts(st *cardsv1alpha1.CardStatus, c *event.Card, at time.Time) {
	if (c.Phase != "" || c.ProviderStatus != "") && newer(st.PhaseObservedAt, at) {
		if c.Phase != "" {
			st.Phase = c.Phase
		}
		st.ProviderStatus = c.ProviderStatus
		st.PhaseReason = c.Reason
		st.PhaseObservedAt = micro(at)
	}
	if c.Type != "" {
		st.Type = c.Type
	}
	if c.Number != nil {
		if st.Number == nil {
			st.Number = &cardsv1alpha1.MaskedNumber{}
		}
		st.Number.BIN = cmp.Or(c.Number.BIN, st.Number.BIN)
		st.Number.Last4 = cmp.Or(c.Number.Last4, st.Number.Last4)
	}
	if c.Expiry != nil {
		st.Expiry = c.Expiry.DeepCopy()
	}
}

// maxReferences bounds providerFields and providerAmounts below the CRD's limits (32 and 16): a provider
// that adds fields cannot make a write fail validation; references past the bound are not kept.
const maxReferences = 16

// mergeAmounts is mergeReferences for amounts, kept sorted by name.
func mergeAmounts(have []cardsv1alpha1.NamedAmount, amounts map[string]cardsv1alpha1.Money, replace bool) []cardsv1alpha1.NamedAmount {
	for k, v := range amounts {
		k = text.Clip(k, 64)
		i := slices.IndexFunc(have, func(a cardsv1alpha1.NamedAmount) bool { return a.Name == k })
		switch {
		case i >= 0 && replace:
			have[i].Amount = v
		case i < 0 && len(have) < maxReferences:
			have = append(have, cardsv1alpha1.NamedAmount{Name: k, Amount: v})
		}
	}
	slices.SortFunc(have, func(a, b cardsv1alpha1.NamedAmount) int { return strings.Compare(a.Name, b.Name) })
	return have
}

// mergeReferences adds refs to have (replacing values when replace, else only filling missing keys), clipped
// to the CRD's bounds.
func mergeReferences(have, refs map[string]string, replace bool) map[string]string {
	for k, v := range refs {
		k, v = text.Clip(k, 64), text.Clip(v, 256) // identifiers: bounded, never rewritten
		if k == "" || v == "" {
			continue
		}
		old, ok := have[k]
		if (ok && !replace) || old == v || (!ok && len(have) >= maxReferences) {
			continue
		}
		if have == nil {
			have = map[string]string{}
		}
		have[k] = v
	}
	return have
}

// applyReconciliation merges what reconciliation needs besides the amounts: the fee breakdown, the exchange
// rate and the provider's fields.
func applyReconciliation(st *cardsv1alpha1.CardTransactionStatus, tx *event.Transaction, replace bool) {
	if len(tx.Fees) > 0 && (replace || st.Fees == nil) {
		st.Fees = slices.Clone(tx.Fees)
	}
	if tx.ExchangeRate != "" && (replace || st.ExchangeRate == "") {
		st.ExchangeRate = tx.ExchangeRate
	}
	st.ProviderFields = mergeReferences(st.ProviderFields, tx.References, replace)
}

// recordLastEvent notes the event as the object's last one unless an event with a later time is recorded.
// A duplicate (same type, ID and time) changes nothing, not even the receive time.
func recordLastEvent(last **cardsv1alpha1.ProviderEvent, ev *event.Event, at, received time.Time, factsChanged bool) {
	cur := *last
	if cur != nil && cur.Time != nil && at.Before(cur.Time.Time) {
		return
	}
	if !factsChanged && cur != nil && cur.Type == ev.Type && cur.ID == ev.ID && cur.Time != nil && cur.Time.Equal(&metav1.MicroTime{Time: at}) {
		return
	}
	r := metav1.NewTime(received)
	*last = &cardsv1alpha1.ProviderEvent{Type: clip(ev.Type, 64), ID: clip(ev.ID, 128), Time: micro(at), ReceivedAt: &r}
}

// applyTransaction merges a transaction's facts. Facts from an event not older than the stored ones replace
// them; an older event (or an authorization request, fillOnly) only fills fields still empty.
func applyTransaction(st *cardsv1alpha1.CardTransactionStatus, ev *event.Event, tx *event.Transaction, at, received time.Time, fillOnly bool) bool {
	before := st.DeepCopy()
	replace := !fillOnly && newer(st.ObservedAt, at)
	str := func(dst *string, v string) {
		if v != "" && (replace || *dst == "") {
			*dst = v
		}
	}
	money := func(dst **cardsv1alpha1.Money, v *cardsv1alpha1.Money) {
		if v != nil && (replace || *dst == nil) {
			m := *v
			*dst = &m
		}
	}
	if tx.Type != "" && (replace || st.Type == "") {
		st.Type = tx.Type
	}
	if tx.Phase != "" && (replace || st.Phase == "") {
		st.Phase = tx.Phase
	}
	if tx.Direction != "" && (replace || st.Direction == "") {
		st.Direction = tx.Direction
	}
	str(&st.ProviderStatus, tx.ProviderStatus)
	money(&st.Amount, tx.Amount)
	money(&st.BillingAmount, tx.BillingAmount)
	money(&st.Fee, tx.Fee)
	if m := tx.Merchant; m != nil {
		if st.Merchant == nil {
			st.Merchant = &cardsv1alpha1.Merchant{}
		}
		str(&st.Merchant.Name, m.Name)
		str(&st.Merchant.MCC, m.MCC)
		str(&st.Merchant.Country, m.Country)
		str(&st.Merchant.ID, m.ID)
	}
	str(&st.Channel, tx.Channel)
	str(&st.Description, clip(tx.Description, 512))
	str(&st.FailureReason, clip(tx.FailureReason, 512))
	str(&st.OriginalTransactionID, tx.OriginalTransactionID)
	str(&st.AuthorizationID, tx.AuthorizationID)
	applyReconciliation(st, tx, replace)
	if tx.Crypto != nil && (replace || st.Crypto == nil) {
		st.Crypto = tx.Crypto.DeepCopy()
	}
	if !tx.OccurredAt.IsZero() && (replace || st.OccurredAt == nil) {
		t := metav1.NewTime(tx.OccurredAt)
		st.OccurredAt = &t
	}
	if replace {
		st.ObservedAt = micro(at)
	}
	factsChanged := !equality.Semantic.DeepEqual(before, st)
	recordLastEvent(&st.LastEvent, ev, at, received, factsChanged)
	return factsChanged || !equality.Semantic.DeepEqual(before.LastEvent, st.LastEvent)
}
