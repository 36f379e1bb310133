package projection

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// A redeliver annotation is one request: the updates that follow it while it is still on the object (the
// ProjectionFailed condition cleared by the redelivery itself) used to send the same state again.
func TestARedeliverAnnotationIsActedOnOnce(t *testing.T) {
	d := &Dispatcher{}
	key := objectKey{kindCard, types.NamespacedName{Namespace: "ns", Name: "c3"}}
	card := func(annotations map[string]string) *cardsv1alpha1.Card {
		return &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c3", Annotations: annotations}}
	}
	asked := map[string]string{cardsv1alpha1.AnnotationRedeliver: "1"}
	steps := []struct {
		obj  *cardsv1alpha1.Card
		want bool
	}{
		{card(nil), false},
		{card(asked), true},  // the request
		{card(asked), false}, // a status update while the annotation is still on
		{card(map[string]string{cardsv1alpha1.AnnotationRedeliver: "2"}), true}, // a new value is a new request
		{card(nil), false},  // the annotation removed
		{card(asked), true}, // the same value again, after removal, asks again
	}
	for i, s := range steps {
		if got := d.redeliverRequested(key, s.obj); got != s.want {
			t.Errorf("step %d: redeliverRequested = %v, want %v", i, got, s.want)
		}
	}
}
