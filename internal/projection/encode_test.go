package projection

import (
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// testCard is a card as the cache holds it: managed fields and delivery cursors included.
func testCard() *cardsv1alpha1.Card {
	now := metav1.NewTime(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	c := &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c1", UID: "u1", ResourceVersion: "42",
		Labels:        map[string]string{"team": "growth"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "cardplane", Operation: metav1.ManagedFieldsOperationApply, Time: &now}}},
		Spec: cardsv1alpha1.CardSpec{ProviderCardID: "card-1"}}
	c.Status.Phase = cardsv1alpha1.CardPhase("Active")
	c.Status.StateSequence = 7
	c.Status.Deliveries = []cardsv1alpha1.DeliveryCursor{{Destination: "ns/ep/ledger"}}
	return c
}

// The delivered object leaves out managed fields and delivery cursors, and the cached object is unchanged.
func TestEncodeLeavesOutManagedFieldsAndCursors(t *testing.T) {
	c := testCard()
	data, err := encode(c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	md, st := m["metadata"].(map[string]any), m["status"].(map[string]any)
	if _, ok := md["managedFields"]; ok {
		t.Error("managedFields delivered")
	}
	if _, ok := st["deliveries"]; ok {
		t.Error("status.deliveries delivered")
	}
	if md["name"] != "c1" || st["stateSequence"] != float64(7) || md["labels"].(map[string]any)["team"] != "growth" {
		t.Errorf("delivered %s", data)
	}
	if len(c.ManagedFields) != 1 || len(c.Status.Deliveries) != 1 {
		t.Error("encode changed the cached object")
	}
}

// BenchmarkEncode compares one marshal of a shallow copy (encode) with the former marshal, decode into a map,
// delete and marshal again (viaMap), on the same card.
func BenchmarkEncode(b *testing.B) {
	c := testCard()
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			if _, err := encode(c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("viaMap", func(b *testing.B) {
		for b.Loop() {
			raw, _ := json.Marshal(c)
			var m map[string]any
			_ = json.Unmarshal(raw, &m)
			delete(m["metadata"].(map[string]any), "managedFields")
			delete(m["status"].(map[string]any), "deliveries")
			if _, err := json.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
