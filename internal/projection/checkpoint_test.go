package projection

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/util/workqueue"
)

// TestCheckpointStaysBelowPendingChanges: the checkpoint a destination writes never passes a change it has not
// served, nor a transaction not yet routed, and never falls below the one it started from.
func TestCheckpointStaysBelowPendingChanges(t *testing.T) {
	d := &Dispatcher{Now: time.Now}
	q := &destQueue{d: d, name: "ns/ep/ledger", m: destinationMetrics(types.NamespacedName{Namespace: "ns", Name: "ep"}, "ledger"),
		start: [kinds]uint64{50, 40}, wq: workqueue.NewTypedDelayingQueue[objectKey](), delivered: cache.NewLRUExpireCache(16), attempts: map[objectKey]attemptState{}, pending: map[objectKey]pendingState{}}
	card := objectKey{kindCard, types.NamespacedName{Namespace: "ns", Name: "c"}}
	txn := objectKey{kindTransaction, types.NamespacedName{Namespace: "ns", Name: "t"}}
	check := func(what string, seen [kinds]uint64, unresolved uint64, wantCards, wantTxns string) {
		t.Helper()
		s := q.status(seen, unresolved)
		if s.Checkpoint == nil || s.Checkpoint.Cards != wantCards || s.Checkpoint.Transactions != wantTxns {
			t.Errorf("%s: checkpoint = %+v, want cards %s transactions %s", what, s.Checkpoint, wantCards, wantTxns)
		}
	}
	check("nothing seen since the start", [kinds]uint64{}, 0, "50", "40")
	check("all served", [kinds]uint64{120, 130}, 0, "120", "130")

	q.enqueue(card, 100, false, false)
	q.enqueue(txn, 110, false, false)
	check("both pending", [kinds]uint64{120, 130}, 0, "99", "109")
	check("a transaction waiting for its card", [kinds]uint64{120, 130}, 105, "99", "104")

	// A change arrives while the first is being sent: settling the first keeps the second pending.
	q.enqueue(card, 118, false, false)
	q.settle(card, 100)
	check("a later change of the card pending", [kinds]uint64{120, 130}, 0, "100", "109")
	q.settle(card, 118)
	q.settle(txn, 110)
	check("all served again", [kinds]uint64{120, 130}, 0, "120", "130")

	// An object listed at start at or below the checkpoint was served before the restart.
	q.enqueue(card, 45, true, false)
	if len(q.pending) != 0 {
		t.Errorf("a card listed below the start checkpoint was queued: %+v", q.pending)
	}
	q.enqueue(card, 45, true, true)
	if len(q.pending) != 1 {
		t.Error("a redelivery asked for was not queued")
	}
	q.settle(card, 45)

	// An informer that lists again hands on older versions after newer ones: the checkpoints stay put.
	d.noteSeen(kindCard, 200)
	d.noteSeen(kindCard, 150)
	check("card versions out of order", [kinds]uint64{200, 130}, 0, "120", "130")
	q.wq.ShutDown()
}
