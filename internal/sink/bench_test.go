package sink_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cardplane/cardplane/internal/sink"
)

// benchEvent is a 1 KiB state of one of 64 cards.
func benchEvent(i int64) sink.Event {
	name := "card-" + strconv.FormatInt(i%64, 10)
	data, _ := json.Marshal(map[string]any{"metadata": map[string]any{"name": name, "namespace": "team-a"},
		"status": map[string]any{"stateSequence": i, "pad": strings.Repeat("x", 900)}})
	return sink.Event{ID: "uid-" + name + "-" + strconv.FormatInt(i, 10), Type: "card.updated",
		Source: "/namespaces/team-a/cards/" + name, Subject: name, Key: "uid-" + name, Time: time.Now(), Data: data}
}

// benchSinks are the sinks against in-process destinations on loopback: an HTTP server that answers 204,
// the sdk-go CloudEvents receiver, kfake and an embedded JetStream server (file store).
func benchSinks(b *testing.B) map[string]sink.Sink {
	t := b
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(hook.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	startCEReceiver(t, l)
	ceURL := "http://" + l.Addr().String() + "/"
	kafka := newKafkaCluster(t)
	nats := startNATS(t, -1, b.TempDir(), nil)
	b.Cleanup(func() {
		kafka.Close()
		nats.Shutdown()
	})
	return map[string]sink.Sink{
		"webhook":                newWebhook(t, hook.URL, sink.HTTP{}),
		"cloudevents-binary":     newCloudEvents(t, ceURL, sink.Binary, sink.HTTP{}),
		"cloudevents-structured": newCloudEvents(t, ceURL, sink.Structured, sink.HTTP{}),
		"kafka":                  newKafka(t, sink.KafkaConfig{Brokers: kafka.ListenAddrs()}),
		"nats":                   newNATS(t, sink.NATSConfig{URLs: []string{nats.ClientURL()}}),
	}
}

// BenchmarkSend is one worker sending 1 KiB states one after the other, each waiting for its ack: the
// latency-bound rate of one dispatcher worker.
func BenchmarkSend(b *testing.B) {
	sinks := benchSinks(b)
	for _, name := range []string{"webhook", "cloudevents-binary", "cloudevents-structured", "kafka", "nats"} {
		s := sinks[name]
		b.Run(name, func(b *testing.B) {
			var i int64
			b.SetBytes(int64(len(benchEvent(0).Data)))
			for b.Loop() {
				i++
				if err := s.Send(context.Background(), benchEvent(i)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkSendParallel is 8 workers at once (a destination's maxInFlight), each on its own cards.
func BenchmarkSendParallel(b *testing.B) {
	sinks := benchSinks(b)
	for _, name := range []string{"webhook", "cloudevents-binary", "kafka", "nats"} {
		s := sinks[name]
		b.Run(name, func(b *testing.B) {
			var n atomic.Int64
			b.SetBytes(int64(len(benchEvent(0).Data)))
			b.SetParallelism(4) // 8 workers on these 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Send(context.Background(), benchEvent(n.Add(1))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
