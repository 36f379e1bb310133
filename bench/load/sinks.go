package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/sink"
)

// The CardEventSinks' destinations, all in this process on loopback.
const (
	kafkaTopic    = "card-events"
	natsStream    = "LOAD"
	natsPrefix    = "load"
	webhookSecret = "sink-webhook"
)

// sinkReceiver is one CardEventSink of the load namespace and the receiver it delivers to.
type sinkReceiver struct {
	*arrivals
	spec  cardsv1alpha1.SinkSpec
	close func()
}

// object is the CardEventSink for the receiver (default delivery: maxInFlight 8, every card and transaction).
func (s *sinkReceiver) object() *cardsv1alpha1.CardEventSink {
	return &cardsv1alpha1.CardEventSink{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: s.name},
		Spec: cardsv1alpha1.CardEventSinkSpec{Sink: s.spec}}
}

func (s *sinkReceiver) ready(cs *cardsv1alpha1.CardEventSink) bool {
	c := apimeta.FindStatusCondition(cs.Status.Conditions, "Ready")
	return c != nil && c.Status == metav1.ConditionTrue
}

// startSinks starts the four receivers: a Standard Webhooks HTTP receiver, the sdk-go CloudEvents receiver
// (binary mode), kfake (franz-go's in-memory Kafka-protocol broker, not Kafka) with a franz-go consumer, and
// an embedded NATS server with JetStream (file store under dir) with an ordered consumer. Each records when
// each state reached the harness.
func startSinks(ctx context.Context, dir string) ([]*sinkReceiver, error) {
	var out []*sinkReceiver
	closeAll := func() {
		for _, s := range out {
			s.close()
		}
	}
	hook := newDestination("webhook", 0)
	out = append(out, &sinkReceiver{arrivals: hook.arrivals, close: hook.srv.Close,
		spec: cardsv1alpha1.SinkSpec{Webhook: &cardsv1alpha1.WebhookSink{URL: hook.srv.URL,
			SecretRef: cardsv1alpha1.LocalObjectReference{Name: webhookSecret}}}})
	for _, start := range []func(context.Context, string) (*sinkReceiver, error){startCloudEvents, startKafka, startNATS} {
		s, err := start(ctx, dir)
		if err != nil {
			closeAll()
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// startCloudEvents runs the sdk-go HTTP receiver; the sink sends binary mode (ce-* headers, the object as body).
func startCloudEvents(ctx context.Context, _ string) (*sinkReceiver, error) {
	s := &sinkReceiver{arrivals: newArrivals("cloudevents")}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c, err := cloudevents.NewClientHTTP(cehttp.WithListener(l))
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.StartReceiver(rctx, func(e event.Event) protocol.Result {
			at := time.Now()
			if err := s.record(strings.TrimPrefix(e.Type(), sink.CloudEventTypePrefix), e.Data(), at); err != nil {
				return protocol.NewReceipt(false, "%v", err)
			}
			return protocol.ResultACK
		})
	}()
	s.close = func() { cancel(); <-done }
	s.spec = cardsv1alpha1.SinkSpec{CloudEvents: &cardsv1alpha1.CloudEventsSink{URL: "http://" + l.Addr().String() + "/",
		Mode: "Binary"}}
	return s, nil
}

// startKafka runs kfake with the topic (4 partitions) and consumes it from the start.
func startKafka(ctx context.Context, _ string) (*sinkReceiver, error) {
	s := &sinkReceiver{arrivals: newArrivals("kafka")}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, kafkaTopic))
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(kafkaTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond), kgo.ClientID("bench-load"))
	if err != nil {
		cluster.Close()
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for cctx.Err() == nil {
			fs := cl.PollFetches(cctx)
			at := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				_ = s.record(strings.TrimPrefix(kafkaHeader(r, "ce_type"), sink.CloudEventTypePrefix), r.Value, at)
			})
		}
	}()
	s.close = func() { cancel(); wg.Wait(); cl.Close(); cluster.Close() }
	s.spec = cardsv1alpha1.SinkSpec{Kafka: &cardsv1alpha1.KafkaSink{Brokers: cluster.ListenAddrs(), Topic: kafkaTopic}}
	return s, nil
}

func kafkaHeader(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// startNATS runs a NATS server with JetStream (file store), the stream LOAD on load.>, and an ordered consumer
// of it.
func startNATS(ctx context.Context, dir string) (*sinkReceiver, error) {
	s := &sinkReceiver{arrivals: newArrivals("nats")}
	store, err := os.MkdirTemp(dir, "nats-")
	if err != nil {
		return nil, err
	}
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: store,
		NoLog: true, NoSigs: true})
	if err != nil {
		return nil, err
	}
	srv.Start()
	stop := func() { srv.Shutdown(); srv.WaitForShutdown() }
	if !srv.ReadyForConnections(10 * time.Second) {
		stop()
		return nil, errors.New("the NATS server did not start within 10s")
	}
	cc, nc, err := consumeNATS(ctx, srv.ClientURL(), s)
	if err != nil {
		stop()
		return nil, fmt.Errorf("NATS: %w", err)
	}
	s.close = func() { cc.Stop(); <-cc.Closed(); nc.Close(); stop() }
	s.spec = cardsv1alpha1.SinkSpec{NATS: &cardsv1alpha1.NATSSink{URLs: []string{srv.ClientURL()}, SubjectPrefix: natsPrefix,
		Stream: natsStream}}
	return s, nil
}

func consumeNATS(ctx context.Context, url string, s *sinkReceiver) (jetstream.ConsumeContext, *nats.Conn, error) {
	nc, err := nats.Connect(url, nats.Name("bench-load"))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err == nil {
		_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: natsStream, Subjects: []string{natsPrefix + ".>"},
			Duplicates: 2 * time.Minute})
	}
	var cons jetstream.Consumer
	if err == nil {
		cons, err = js.OrderedConsumer(ctx, natsStream, jetstream.OrderedConsumerConfig{})
	}
	var cc jetstream.ConsumeContext
	if err == nil {
		cc, err = cons.Consume(func(m jetstream.Msg) {
			_ = s.record(strings.TrimPrefix(m.Subject(), natsPrefix+"."), m.Data(), time.Now())
		})
	}
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return cc, nc, nil
}
