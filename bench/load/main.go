// Command load measures cardplane under sustained load, end to end: the real manager binary on a local
// kube-apiserver and etcd, a UPay endpoint with three destinations (two answering at once, one after -slow),
// and signed callbacks — first -cards cards, then settled transactions at saturation (-workers senders for
// -saturate, or -transactions of them), then at half the saturated rate for -half. It reports, per phase, the
// ingest rate, the projection rate and lag (callback acknowledged -> delivered at a fast destination), the time
// to settle, the API writes per transaction (from the API server's own metrics, by resource) and the
// footprint (manager and kube-apiserver RSS, etcd bytes per object). With -sinks (the default) the namespace
// also has four CardEventSinks taking every card and transaction state — Standard Webhooks, CloudEvents (binary
// mode, the sdk-go receiver), Kafka (kfake, franz-go's in-memory Kafka-protocol broker, read by a franz-go
// consumer) and NATS JetStream (an embedded nats-server) — and each phase also waits for them and reports
// their rate and lag beside the fast destination's, and the CPU each process used.
//
//	KUBEBUILDER_ASSETS=$(hack/control-plane.sh) go run ./bench/load                       # make bench-load
//	KUBEBUILDER_ASSETS=$(hack/control-plane.sh) go run ./bench/load -cards 10000 -transactions 100000 -half 0
//
// It prints a Markdown report; docs/benchmarks.md keeps the figures of a run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"time"
)

type config struct {
	cards, workers, transactions int
	saturate, half, slow, settle time.Duration
	waitSlow, sinks              bool
	managerArgs, managerEnv      string
	out                          string
}

func main() {
	var cfg config
	flag.IntVar(&cfg.cards, "cards", 2000, "cards created before the transactions")
	flag.IntVar(&cfg.workers, "workers", 16, "concurrent senders at saturation")
	flag.IntVar(&cfg.transactions, "transactions", 0, "settled transactions sent at saturation (0: send for -saturate)")
	flag.DurationVar(&cfg.saturate, "saturate", 60*time.Second, "length of the saturation phase (when -transactions is 0)")
	flag.DurationVar(&cfg.half, "half", 60*time.Second, "length of the phase at half the saturated rate (0 skips it)")
	flag.DurationVar(&cfg.slow, "slow", 2*time.Second, "how long the slow destination takes to answer")
	flag.DurationVar(&cfg.settle, "settle-timeout", 20*time.Minute, "how long to wait for the fast destinations (and then the sinks) to receive everything after a phase")
	flag.BoolVar(&cfg.waitSlow, "wait-slow", false, "also wait for the slow destination to receive everything")
	flag.BoolVar(&cfg.sinks, "sinks", true, "also deliver to four CardEventSinks in the namespace (Standard Webhooks, CloudEvents, Kafka on kfake, NATS JetStream) and wait for them after each phase")
	flag.StringVar(&cfg.managerArgs, "manager-args", "", "extra flags for cardplane manager, space-separated")
	flag.StringVar(&cfg.managerEnv, "manager-env", "", "extra environment of the manager alone, space-separated K=V (e.g. GOMEMLIMIT=690MiB: set for the harness, it would reach the API server too)")
	flag.StringVar(&cfg.out, "out", "", "also write the report to this file")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	sys, err := startSystem(ctx, strings.Fields(cfg.managerArgs), strings.Fields(cfg.managerEnv))
	if err != nil {
		return err
	}
	defer sys.stop()
	h, err := newHarness(ctx, sys, cfg)
	if err != nil {
		return sys.withLog(err)
	}
	defer h.close()
	rep := &report{cfg: cfg, started: time.Now(), cpus: runtime.NumCPU()}
	if rep.idle, err = sys.footprint(ctx); err != nil {
		return err
	}
	if rep.cards, err = h.createCards(ctx); err != nil {
		return sys.withLog(err)
	}
	sat, err := h.transactions(ctx, "saturation", saturation(cfg))
	if err != nil {
		return sys.withLog(err)
	}
	rep.phases = append(rep.phases, sat)
	if cfg.half > 0 && sat.ingestRate() > 0 {
		half, err := h.transactions(ctx, "half rate", paced(sat.ingestRate()/2, cfg.half, cfg.workers))
		if err != nil {
			return sys.withLog(err)
		}
		rep.phases = append(rep.phases, half)
	}
	if rep.end, err = sys.footprint(ctx); err != nil {
		return err
	}
	rep.peak = h.sampler.stop()
	rep.heap = sys.heapProfile(ctx)
	text := rep.String()
	fmt.Print(text)
	if cfg.out != "" {
		return os.WriteFile(cfg.out, []byte(text), 0o600)
	}
	return nil
}

// withLog adds the tail of the manager's log to an error.
func (s *system) withLog(err error) error {
	b, _ := os.ReadFile(s.managerLog)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return fmt.Errorf("%w\nmanager log (tail):\n%s", err, strings.Join(lines[max(0, len(lines)-30):], "\n"))
}
