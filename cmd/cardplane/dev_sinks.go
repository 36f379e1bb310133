//go:build !nodev

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	ceclient "github.com/cloudevents/sdk-go/v2/client"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The demo sinks: what the CardEventSinks of config/samples/cardeventsinks deliver to in `cardplane dev`.
// The Standard Webhooks one is the demo destination (destination.go); these are the other three transports.
const (
	demoNATSStream    = "CARDS"
	demoNATSSubjects  = "cards.>"
	demoKafkaTopic    = "card-events"
	demoNATSLog       = "sinks-nats.log"
	demoKafkaLog      = "sinks-kafka.log"
	demoCloudEventLog = "sinks-cloudevents.log"
)

// demoSinkOptions are the addresses of the demo sinks; an empty one is not started.
type demoSinkOptions struct {
	natsAddr, kafkaAddr, cloudEventsAddr string
}

func (o *demoSinkOptions) disableAll() { *o = demoSinkOptions{} }

// demoSinks are the running demo sinks. Close stops them all.
type demoSinks struct {
	// running describes each running sink for the banner.
	running []demoSinkInfo

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closers []func()
}

// sinkLog is one demo sink's log file: one line per event received.
type sinkLog struct {
	mu sync.Mutex
	f  *os.File
}

func openSinkLog(path string) (*sinkLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	return &sinkLog{f: f}, nil
}

func (l *sinkLog) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.f, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05.000")}, args...)...)
}

func (l *sinkLog) Close() error { return l.f.Close() }

// startDemoSinks starts the demo sinks o names, logging next to the kubeconfig in dir. On an error the ones
// already started are stopped.
func startDemoSinks(o demoSinkOptions, dir string) (_ *demoSinks, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	d := &demoSinks{cancel: cancel}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if o.natsAddr != "" {
		if err := d.startNATS(ctx, o.natsAddr, dir); err != nil {
			return nil, fmt.Errorf("demo NATS server: %w", err)
		}
	}
	if o.kafkaAddr != "" {
		if err := d.startKafka(ctx, o.kafkaAddr, dir); err != nil {
			return nil, fmt.Errorf("demo Kafka-protocol broker: %w", err)
		}
	}
	if o.cloudEventsAddr != "" {
		if err := d.startCloudEvents(ctx, o.cloudEventsAddr, dir); err != nil {
			return nil, fmt.Errorf("demo CloudEvents receiver: %w", err)
		}
	}
	return d, nil
}

// Close stops the sinks' readers, then the servers, in reverse order of starting, and closes the logs.
func (d *demoSinks) Close() {
	d.cancel()
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.wg.Wait()
}

// demoSinkInfo is one demo sink in the banner.
type demoSinkInfo struct{ name, addr, what, log string }

func (d *demoSinks) onClose(f func()) { d.closers = append(d.closers, f) }

// startNATS runs a NATS server with JetStream on addr, storing under dir/nats (emptied first: the control
// plane is new on every run too), with the stream CARDS on cards.>, and logs what the stream stores.
func (d *demoSinks) startNATS(ctx context.Context, addr, dir string) error {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return err
	}
	store := filepath.Join(dir, "nats")
	if err := os.RemoveAll(store); err != nil {
		return err
	}
	srv, err := natsserver.NewServer(&natsserver.Options{ServerName: "cardplane-dev", Host: host, Port: port,
		JetStream: true, StoreDir: store, NoLog: true, NoSigs: true})
	if err != nil {
		return err
	}
	srv.Start()
	d.onClose(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("not listening on %s after 10s (is the port taken?)", addr)
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.Name("cardplane-dev-log"), nats.InProcessServer(srv))
	if err != nil {
		return err
	}
	d.onClose(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: demoNATSStream,
		Subjects: []string{demoNATSSubjects}, Duplicates: 2 * time.Minute}); err != nil {
		return err
	}
	cons, err := js.OrderedConsumer(ctx, demoNATSStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	log, err := openSinkLog(filepath.Join(dir, demoNATSLog))
	if err != nil {
		return err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		seq := uint64(0)
		if md, err := m.Metadata(); err == nil {
			seq = md.Sequence.Stream
		}
		log.printf("nats %s id %s subject %s %s (stream %s seq %d)", m.Subject(), m.Headers().Get(jetstream.MsgIDHeader),
			m.Headers().Get("ce-subject"), describeState(m.Data()), demoNATSStream, seq)
	})
	if err != nil {
		_ = log.Close()
		return err
	}
	d.onClose(func() { cc.Stop(); <-cc.Closed(); _ = log.Close() })
	d.running = append(d.running, demoSinkInfo{"NATS with JetStream", "nats://" + addr,
		fmt.Sprintf("stream %s on %s (growth-frozen-cards; growth-kafka's dead letters)", demoNATSStream, demoNATSSubjects), filepath.Join(dir, demoNATSLog)})
	return nil
}

// startKafka runs franz-go's kfake, an in-memory Kafka-protocol broker (a stand-in for Kafka, not Kafka), on
// addr with the topic card-events, and logs every record produced to it.
func (d *demoSinks) startKafka(ctx context.Context, addr, dir string) error {
	if _, _, err := splitHostPort(addr); err != nil {
		return err
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, demoKafkaTopic),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }))
	if err != nil {
		return err
	}
	d.onClose(cluster.Close)
	log, err := openSinkLog(filepath.Join(dir, demoKafkaLog))
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(demoKafkaTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.ClientID("cardplane-dev-log"))
	if err != nil {
		_ = log.Close()
		return err
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer log.Close()
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				log.printf("kafka %s/%d@%d key %s type %s id %s subject %s %s", r.Topic, r.Partition, r.Offset, r.Key,
					kafkaHeader(r, "ce_type"), kafkaHeader(r, "ce_id"), kafkaHeader(r, "ce_subject"), describeState(r.Value))
			})
		}
	}()
	d.running = append(d.running, demoSinkInfo{"Kafka-protocol broker", addr,
		fmt.Sprintf("topic %s (growth-kafka); franz-go's in-memory kfake, a stand-in, not Kafka", demoKafkaTopic), filepath.Join(dir, demoKafkaLog)})
	return nil
}

func kafkaHeader(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// startCloudEvents runs a CloudEvents receiver (the sdk-go HTTP protocol binding, binary and structured mode)
// on addr, logging every event.
func (d *demoSinks) startCloudEvents(ctx context.Context, addr, dir string) error {
	p, err := cehttp.New()
	if err != nil {
		return err
	}
	log, err := openSinkLog(filepath.Join(dir, demoCloudEventLog))
	if err != nil {
		return err
	}
	h, err := ceclient.NewHTTPReceiveHandler(ctx, p, func(e event.Event) {
		log.printf("cloudevents %s id %s source %s subject %s %s", e.Type(), e.ID(), e.Source(), e.Subject(), describeState(e.Data()))
	})
	if err != nil {
		_ = log.Close()
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = log.Close()
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.printf("cloudevents receiver stopped: %v", err)
		}
	}()
	d.onClose(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = log.Close()
	})
	d.running = append(d.running, demoSinkInfo{"CloudEvents receiver", "http://" + addr + "/",
		"binary or structured mode (growth-cloudevents)", filepath.Join(dir, demoCloudEventLog)})
	return nil
}

// describeState summarises a delivered object (or a dead letter) for a log line: its name, stateSequence and
// phase (an authorization's outcome).
func describeState(data []byte) string {
	var v struct {
		CardEventSink string          `json:"cardEventSink"`
		Reason        string          `json:"reason"`
		Data          json.RawMessage `json:"data"`
		Metadata      struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Status struct {
			Phase         string `json:"phase"`
			StateSequence int64  `json:"stateSequence"`
			Authorization *struct {
				Outcome string `json:"outcome"`
			} `json:"authorization"`
		} `json:"status"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Sprintf("(%d bytes, not JSON)", len(data))
	}
	if v.CardEventSink != "" { // a dead letter
		return fmt.Sprintf("dead letter of %s: %s; %s", v.CardEventSink, strings.TrimSpace(v.Reason), describeState(v.Data))
	}
	s := fmt.Sprintf("name %s stateSequence %d", v.Metadata.Name, v.Status.StateSequence)
	if v.Status.Phase != "" {
		s += " phase " + v.Status.Phase
	}
	if a := v.Status.Authorization; a != nil && a.Outcome != "" {
		s += " authorization " + a.Outcome
	}
	return s
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	var port int
	if _, err := fmt.Sscanf(p, "%d", &port); err != nil || port <= 0 {
		return "", 0, fmt.Errorf("%s: give a host:port with a fixed port", addr)
	}
	return host, port, nil
}

// printBanner writes the banner's part about the demo sinks.
func (d *demoSinks) printBanner(out io.Writer, namespace string) {
	if d == nil || len(d.running) == 0 {
		return
	}
	fmt.Fprintln(out, "The CardEventSinks of config/samples/cardeventsinks deliver to demo sinks on loopback:")
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	var logs []string
	for _, r := range d.running {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.name, r.addr, r.what)
		logs = append(logs, r.log)
	}
	_ = tw.Flush()
	fmt.Fprintf(out, `
Each logs one line per event received (type, id, subject or key, name, stateSequence):

  tail -f %s

Their delivery counters: cardplane sinks list -n %s

`, strings.Join(logs, " "), namespace)
}
