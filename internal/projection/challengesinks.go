package projection

import (
	"context"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/sink"
	"github.com/cardplane/cardplane/internal/sinkconfig"
)

// deliverToSinks hands a challenge to the card's namespace's CardEventSinks that list challenge.otp and select
// the card. The code goes only over HTTPS (the API admits challenge.otp only on webhook and cloudEvents sinks);
// plain http only to a loopback URL with --allow-loopback-destinations, connected to on loopback only. Sinks
// are built for the one send and closed: challenges are rare, and this runs on whichever replica received the
// callback, not only on the leader that runs the queues. The filter does not apply: it reads card and
// transaction states, and a challenge is neither.
func (f *ChallengeForwarder) deliverToSinks(ctx context.Context, card *cardsv1alpha1.Card, ev sink.Event) {
	log := logf.FromContext(ctx)
	list := &cardsv1alpha1.CardEventSinkList{}
	if err := f.Reader.List(ctx, list, client.InNamespace(card.Namespace)); err != nil {
		log.Error(err, "Cannot list the CardEventSinks a challenge may go to", "namespace", card.Namespace)
		return
	}
	for i := range list.Items {
		cs := &list.Items[i]
		if !slices.Contains(cs.Spec.EventTypes, cardsv1alpha1.EventChallengeOTP) || !selects(cs, card) {
			continue
		}
		name := "cardeventsink " + cs.Namespace + "/" + cs.Name
		dial, ok := f.confidentialDial(&cs.Spec.Sink)
		if !ok {
			challengeDeliveries.WithLabelValues("", name, "insecure").Inc()
			log.Error(ErrInsecureDestination, "One-time code refused for a plain http:// sink; the code is dropped", "cardEventSink", name)
			continue
		}
		s, err := sinkconfig.Build(ctx, f.Reader, cs.Namespace, &cs.Spec.Sink, sinkconfig.Options{Dial: dial, RootCAs: f.Network.RootCAs, Timeout: 5 * time.Second})
		if err != nil {
			challengeDeliveries.WithLabelValues("", name, "failed").Inc()
			log.Error(err, "Cannot build the sink of a challenge delivery", "cardEventSink", name)
			continue
		}
		go f.send(log, s, ev, "", name)
	}
}

// selects reports whether the sink's selector takes the card; a selector that does not parse takes nothing.
func selects(cs *cardsv1alpha1.CardEventSink, card *cardsv1alpha1.Card) bool {
	if cs.Spec.Selector == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(cs.Spec.Selector)
	return err == nil && sel.Matches(labels.Set(card.Labels))
}

// confidentialDial is the address policy for a one-time code to spec (see Network.confidentialDial); false for
// a transport that is not HTTP.
func (f *ChallengeForwarder) confidentialDial(spec *cardsv1alpha1.SinkSpec) (sink.DialControl, bool) {
	switch {
	case spec.Webhook != nil:
		return f.Network.confidentialDial(spec.Webhook.URL, spec.Webhook.HTTP, f.Sinks.AllowedCIDRs)
	case spec.CloudEvents != nil:
		return f.Network.confidentialDial(spec.CloudEvents.URL, spec.CloudEvents.HTTP, f.Sinks.AllowedCIDRs)
	}
	return nil, false
}
