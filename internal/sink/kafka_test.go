package sink_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/cardplane/cardplane/internal/sink"
)

const kafkaTopic = "cardplane.cards"

func newKafkaCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(4, kafkaTopic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func newKafka(t testing.TB, cfg sink.KafkaConfig) *sink.Kafka {
	t.Helper()
	if cfg.Topic == "" {
		cfg.Topic = kafkaTopic
	}
	if cfg.DialControl == nil {
		cfg.DialControl = loopback
	}
	s, err := sink.NewKafka(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// consumed is every record of the topic, read by a plain franz-go consumer.
func consumed(t *testing.T, addrs []string, want int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(kafkaTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records, want %d", len(recs), want)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Errorf("fetch: %v", err) })
		recs = append(recs, fs.Records()...)
	}
	return recs
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// checkKafka asserts what a consumer that deduplicates on ce_id (as Kafka consumers must) sees: every state
// once, each card's in order, each card in one partition, written by an idempotent producer. It returns how
// many duplicates it dropped.
func checkKafka(t *testing.T, recs []*kgo.Record, evs []sink.Event) int {
	t.Helper()
	var got received
	seen, partition, dups := map[string]bool{}, map[string]int32{}, 0
	for _, r := range recs {
		key, id := string(r.Key), header(r, "ce_id")
		if p, ok := partition[key]; ok && p != r.Partition {
			t.Errorf("card %s in partitions %d and %d", key, p, r.Partition)
		}
		partition[key] = r.Partition
		if r.ProducerID < 0 {
			t.Errorf("record %s written without a producer ID: not idempotent", id)
		}
		if seen[id] {
			dups++
			continue
		}
		seen[id] = true
		got.add(key, id)
	}
	got.check(t, evs)
	return dups
}

func TestKafkaDeliversEveryStateInOrder(t *testing.T) {
	c := newKafkaCluster(t)
	s := newKafka(t, sink.KafkaConfig{Brokers: c.ListenAddrs()})
	evs := events(5, 6)
	if n := deliver(t, s, evs, nil); n != 0 {
		t.Errorf("%d failed attempts against a healthy cluster", n)
	}
	recs := consumed(t, c.ListenAddrs(), len(evs))
	if dups := checkKafka(t, recs, evs); dups != 0 {
		t.Errorf("%d duplicates without any failure", dups)
	}
	r := recs[0]
	for k, want := range map[string]string{"ce_specversion": "1.0", "ce_type": "io.cardplane.card.updated",
		"ce_source":    "/namespaces/team-a/cards/" + strings.TrimPrefix(string(r.Key), "uid-"),
		"content-type": "application/json"} {
		if got := header(r, k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, header(r, "ce_time")); err != nil {
		t.Errorf("ce_time: %v", err)
	}
}

// TestKafkaSameStateTwice documents the limit of Kafka: a state sent again (the caller's retry after an
// answer it did not get) is a second record with the same ce_id, which consumers drop.
func TestKafkaSameStateTwice(t *testing.T) {
	c := newKafkaCluster(t)
	s := newKafka(t, sink.KafkaConfig{Brokers: c.ListenAddrs()})
	ev := events(1, 1)[0]
	for range 2 {
		if err := s.Send(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	recs := consumed(t, c.ListenAddrs(), 2)
	if header(recs[0], "ce_id") != ev.ID || header(recs[1], "ce_id") != ev.ID {
		t.Errorf("records %s and %s, want two of %s", header(recs[0], "ce_id"), header(recs[1], "ce_id"), ev.ID)
	}
}

// TestKafkaDownThenUp: the cluster is down when the sink starts, comes up, goes down for a while in the
// middle (keeping its log on disk) and comes back on the same port; nothing is skipped.
func TestKafkaDownThenUp(t *testing.T) {
	addr, dir := freeAddr(t), t.TempDir()
	port := portOf(t, addr)
	s := newKafka(t, sink.KafkaConfig{Brokers: []string{addr}, Timeout: time.Second})
	evs := events(4, 6)
	var c *kfake.Cluster
	start := func() *kfake.Cluster { return newKafkaCluster(t, kfake.Ports(port), kfake.DataDir(dir)) }
	if failures := deliver(t, s, evs[:12], func() { c = start() }); failures == 0 {
		t.Fatal("a Send to a cluster that is down succeeded")
	}
	c.Close()
	back := make(chan struct{})
	failures := deliver(t, s, evs[12:], func() {
		go func() {
			defer close(back)
			time.Sleep(300 * time.Millisecond)
			c = start()
		}()
	})
	<-back
	if failures == 0 {
		t.Fatal("a Send to a cluster that went down succeeded")
	}
	recs := consumed(t, c.ListenAddrs(), len(evs))
	t.Logf("%d failed attempts, %d duplicates dropped by ce_id", failures, checkKafka(t, recs, evs))
}

func TestKafkaPermanentErrors(t *testing.T) {
	c := newKafkaCluster(t)
	big := events(1, 1)[0]
	big.Data = []byte(`"` + strings.Repeat("x", 2<<20) + `"`)
	err := newKafka(t, sink.KafkaConfig{Brokers: c.ListenAddrs()}).Send(context.Background(), big)
	if !errors.Is(err, sink.ErrTooLarge) || !sink.Permanent(err) {
		t.Errorf("2 MiB record: %v, want a permanent ErrTooLarge", err)
	}
	small := newKafka(t, sink.KafkaConfig{Brokers: c.ListenAddrs(), MaxRecordBytes: 1024})
	big.Data = []byte(`"` + strings.Repeat("x", 2048) + `"`)
	if err := small.Send(context.Background(), big); !errors.Is(err, sink.ErrTooLarge) {
		t.Errorf("2 KiB record over a 1 KiB limit: %v", err)
	}
	noKey := events(1, 1)[0]
	noKey.Key = ""
	if err := small.Send(context.Background(), noKey); !errors.Is(err, sink.ErrInvalidEvent) || !sink.Permanent(err) {
		t.Errorf("event without a key: %v, want a permanent ErrInvalidEvent", err)
	}
	noTopic := newKafka(t, sink.KafkaConfig{Brokers: c.ListenAddrs(), Topic: "missing", Timeout: 30 * time.Second})
	if err := noTopic.Send(context.Background(), events(1, 1)[0]); !sink.Permanent(err) {
		t.Errorf("unknown topic: %v, want a permanent error", err)
	}
}

// TestKafkaMTLSAndSCRAM: a cluster that requires a client certificate of its CA and SCRAM credentials.
func TestKafkaMTLSAndSCRAM(t *testing.T) {
	p := newPKI(t)
	c := newKafkaCluster(t, kfake.TLS(p.serverTLS(true)), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", "cardplane", "s3cret"))
	tlsWith := p.clientTLS(true)
	ok := newKafka(t, sink.KafkaConfig{Brokers: c.ListenAddrs(), TLS: &tlsWith,
		SASL: &sink.KafkaSASL{Mechanism: "SCRAM-SHA-256", Username: "cardplane", Password: "s3cret"}})
	evs := events(2, 3)
	deliver(t, ok, evs, nil)
	tc := &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.clientPair}, MinVersion: tls.VersionTLS12}
	checkKafka(t, consumed(t, c.ListenAddrs(), len(evs), kgo.DialTLSConfig(tc),
		kgo.SASL(scram.Auth{User: "cardplane", Pass: "s3cret"}.AsSha256Mechanism())), evs)

	tlsWithout := p.clientTLS(false)
	for name, cfg := range map[string]sink.KafkaConfig{
		"no client certificate": {TLS: &tlsWithout,
			SASL: &sink.KafkaSASL{Mechanism: "SCRAM-SHA-256", Username: "cardplane", Password: "s3cret"}},
		"wrong password": {TLS: &tlsWith,
			SASL: &sink.KafkaSASL{Mechanism: "SCRAM-SHA-256", Username: "cardplane", Password: "wrong"}},
	} {
		cfg.Brokers, cfg.Timeout = c.ListenAddrs(), 3*time.Second
		err := newKafka(t, cfg).Send(context.Background(), events(1, 1)[0])
		if err == nil {
			t.Errorf("%s: delivered", name)
		}
		t.Logf("%s: %v (permanent %t)", name, err, sink.Permanent(err))
	}
}

func TestKafkaConfigErrors(t *testing.T) {
	for name, cfg := range map[string]sink.KafkaConfig{
		"no brokers":           {Topic: "t"},
		"no topic":             {Brokers: []string{"b:9092"}},
		"PLAIN without TLS":    {Brokers: []string{"b:9092"}, Topic: "t", SASL: &sink.KafkaSASL{Mechanism: "PLAIN", Username: "u", Password: "p"}},
		"unknown mechanism":    {Brokers: []string{"b:9092"}, Topic: "t", SASL: &sink.KafkaSASL{Mechanism: "GSSAPI", Username: "u", Password: "p"}},
		"SASL without secrets": {Brokers: []string{"b:9092"}, Topic: "t", SASL: &sink.KafkaSASL{Mechanism: "SCRAM-SHA-512"}},
		"bad CA":               {Brokers: []string{"b:9092"}, Topic: "t", TLS: &sink.TLS{CA: []byte("x")}},
	} {
		if _, err := sink.NewKafka(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
