package projection

import (
	"context"
	"net"
	"net/url"
	"slices"
	"time"

	"github.com/go-logr/logr"
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
func (f *ChallengeForwarder) deliverToSinks(ctx context.Context, card *cardsv1alpha1.Card, id string, body []byte) {
	log := logf.FromContext(ctx)
	list := &cardsv1alpha1.CardEventSinkList{}
	if err := f.Reader.List(ctx, list, client.InNamespace(card.Namespace)); err != nil {
		log.Error(err, "Cannot list the CardEventSinks a challenge may go to", "namespace", card.Namespace)
		return
	}
	ev := sink.Event{ID: id, Type: string(cardsv1alpha1.EventChallengeOTP), Source: sourceOf(kindCard, card), Subject: card.Name,
		Key: string(card.UID), Time: time.Now().UTC(), Data: body}
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
		s, err := sinkconfig.Build(ctx, f.Reader, cs.Namespace, &cs.Spec.Sink, sinkconfig.Options{Dial: dial, RootCAs: f.Sender.RootCAs, Timeout: 5 * time.Second})
		if err != nil {
			challengeDeliveries.WithLabelValues("", name, "failed").Inc()
			log.Error(err, "Cannot build the sink of a challenge delivery", "cardEventSink", name)
			continue
		}
		go f.sendToSink(log, name, s, ev)
	}
}

func (f *ChallengeForwarder) sendToSink(log logr.Logger, name string, s sink.Sink, ev sink.Event) {
	defer func() { _ = s.Close() }()
	err := f.retry(func() error { return s.Send(context.Background(), ev) }, sink.Permanent)
	if err == nil {
		challengeDeliveries.WithLabelValues("", name, "delivered").Inc()
		return
	}
	challengeDeliveries.WithLabelValues("", name, "failed").Inc()
	log.Info("Challenge not delivered; the code is dropped", "cardEventSink", name, "error", err.Error())
}

// selects reports whether the sink's selector takes the card; a selector that does not parse takes nothing.
func selects(cs *cardsv1alpha1.CardEventSink, card *cardsv1alpha1.Card) bool {
	if cs.Spec.Selector == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(cs.Spec.Selector)
	return err == nil && sel.Matches(labels.Set(card.Labels))
}

// confidentialDial is the address policy for a one-time code to spec: the sinks' policy over https, loopback
// only over plain http (and only with AllowLoopback); false when the code may not go there at all.
func (f *ChallengeForwarder) confidentialDial(spec *cardsv1alpha1.SinkSpec) (sink.DialControl, bool) {
	var raw string
	switch {
	case spec.Webhook != nil:
		raw = spec.Webhook.URL
	case spec.CloudEvents != nil:
		raw = spec.CloudEvents.URL
	default:
		return nil, false
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, false
	}
	if u.Scheme == "https" {
		return sinkDial(f.Sinks.AllowedCIDRs, f.Sender.AllowLoopback), true
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	if !f.Sender.AllowLoopback || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
		return nil, false
	}
	g := &guard{allowLoopback: true, loopbackOnly: true}
	g.init()
	return g.control, true
}
