package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cardplane/cardplane/bench/internal/measure"
)

// phase is one load phase and what was measured of it.
type phase struct {
	name                      string
	ids                       []string
	ingest                    measure.Summary
	firstAck, lastAck         time.Time
	settledFast               time.Time
	settleErr                 error
	writesBefore, writesAfter measure.Metrics
	cpuBefore, cpuAfter       cpuReading // from the phase's start until the fast destinations and the sinks had everything
	fast                      []delivered
	sinks                     []delivered
	slowDelivered             int
}

// delivered is what one destination received of a phase.
type delivered struct {
	name        string
	count       int
	lags        []time.Duration // acknowledged -> first delivery of the settled state, sorted
	first, last time.Time
}

func (p *phase) measureDeliveries(h *harness) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range h.fast {
		p.fast = append(p.fast, p.arrived(h, d.arrivals))
	}
	for _, s := range h.sinks {
		p.sinks = append(p.sinks, p.arrived(h, s.arrivals))
	}
	for _, id := range p.ids {
		if _, ok := h.slow.settledAt(id); ok {
			p.slowDelivered++
		}
	}
}

// arrived is what a received of the phase; h.mu is held.
func (p *phase) arrived(h *harness, a *arrivals) delivered {
	got := delivered{name: a.name}
	for _, id := range p.ids {
		at, ok := a.settledAt(id)
		if !ok {
			continue
		}
		got.count++
		got.lags = append(got.lags, at.Sub(h.acked[id]))
		if got.first.IsZero() || at.Before(got.first) {
			got.first = at
		}
		if at.After(got.last) {
			got.last = at
		}
	}
	slices.Sort(got.lags)
	return got
}

// rate is the receiver's rate, first delivery to last.
func (d delivered) rate() float64 { return rate(d.count, d.last.Sub(d.first)) }

// lag is the p-th percentile of the receiver's lags.
func (d delivered) lag(pct int) time.Duration { return percentile(d.lags, pct) }

// ingestRate is acknowledged transactions per second from the first acknowledgement to the last.
func (p *phase) ingestRate() float64 {
	return rate(len(p.ids), p.lastAck.Sub(p.firstAck))
}

// projectionRate is the slowest fast destination's rate, first delivery to last.
func (p *phase) projectionRate() float64 {
	slowest := 0.0
	for i, d := range p.fast {
		if r := d.rate(); i == 0 || r < slowest {
			slowest = r
		}
	}
	return slowest
}

// lag is the p-th percentile of the lags of every fast destination together.
func (p *phase) lag(pct int) time.Duration {
	var all []time.Duration
	for _, d := range p.fast {
		all = append(all, d.lags...)
	}
	if len(all) == 0 {
		return 0
	}
	slices.Sort(all)
	return percentile(all, pct)
}

// percentile is the nearest-rank p-th percentile of sorted (0 for none).
func percentile(sorted []time.Duration, pct int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (pct*len(sorted)+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// writes groups the API server's writes between two scrapes by resource (and subresource).
func writes(before, after measure.Metrics) map[string]float64 {
	count := func(m measure.Metrics) map[string]float64 {
		out := map[string]float64{}
		mf := m["apiserver_request_total"]
		if mf == nil {
			return out
		}
		for _, s := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if !slices.Contains(measure.APIServerWrites["verb"], l["verb"]) || l["dry_run"] != "" {
				continue
			}
			key := l["resource"]
			if l["subresource"] != "" {
				key += "/" + l["subresource"]
			}
			out[key] += s.GetCounter().GetValue()
		}
		return out
	}
	b, a := count(before), count(after)
	diff := map[string]float64{}
	for k, v := range a {
		if d := v - b[k]; d > 0 {
			diff[k] = d
		}
	}
	return diff
}

// report is the harness's Markdown output.
type report struct {
	cfg             config
	started         time.Time
	cpus            int
	cards           measure.Summary
	phases          []*phase
	idle, end, peak footprint
	heap            string // the manager's heap profile at the end
}

func (r *report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## bench/load — %s, %d CPUs\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"), r.cpus)
	fmt.Fprintf(&b, "UPay callbacks to the real manager binary on a local kube-apiserver and etcd; one endpoint, destinations fast-a and fast-b (answer at once) and slow (answers after %s). %d cards first (%.0f/s), then settled transactions from %d senders.\n\n",
		r.cfg.slow, r.cfg.cards, r.cards.Rate(), r.cfg.workers)
	if r.cfg.sinks {
		b.WriteString("The namespace also has four CardEventSinks (webhook, cloudevents, kafka, nats) taking every card and transaction state; each phase waits for them too.\n\n")
	} else {
		b.WriteString("No CardEventSinks (-sinks=false).\n\n")
	}
	t := measure.NewTable("phase", "transactions", "ingest /s", "ack p50", "ack p99", "errors", "projection /s", "projection ÷ ingest",
		"lag p50", "lag p99", "lag max", "settled after last ack", "slow destination got")
	for _, p := range r.phases {
		settled := dur(p.settledFast.Sub(p.lastAck))
		if p.settleErr != nil {
			settled = "not settled: " + p.settleErr.Error()
		}
		t.Add(p.name, len(p.ids), fmt.Sprintf("%.1f", p.ingestRate()), dur(p.ingest.P50), dur(p.ingest.P99),
			p.ingest.Errors, fmt.Sprintf("%.1f", p.projectionRate()), fmt.Sprintf("%.2f", float64(measure.Ratio(p.projectionRate(), p.ingestRate()))),
			dur(p.lag(50)), dur(p.lag(99)), dur(p.lag(100)), settled,
			fmt.Sprintf("%d of %d", p.slowDelivered, len(p.ids)))
	}
	b.WriteString(t.String() + "\n")
	r.writeSinks(&b)
	r.writeCPU(&b)
	r.writeWrites(&b)
	r.writeFootprint(&b)
	return b.String()
}

// writeSinks compares each CardEventSink with the fast destination fast-a, per phase.
func (r *report) writeSinks(b *strings.Builder) {
	if !r.cfg.sinks || len(r.phases) == 0 {
		return
	}
	b.WriteString("CardEventSinks beside the fast destination (settled transaction states; lag: callback acknowledged -> arrival at the receiver; " +
		"kafka is kfake, franz-go's in-memory Kafka-protocol broker, not a real Kafka, read by a franz-go consumer; nats is an embedded " +
		"nats-server with JetStream (file store), read by an ordered consumer). The four sinks and the three destinations run concurrently " +
		"in the same manager: the rates are shares of one manager's CPU, not each sink's ceiling; the transports alone: " +
		"`go test -bench . ./internal/sink/`.\n\n")
	t := measure.NewTable("phase", "receiver", "states", "projection /s", "projection ÷ ingest", "lag p50", "lag p99", "lag max", "last arrival after last ack")
	for _, p := range r.phases {
		rows := append([]delivered{}, p.fast[:min(1, len(p.fast))]...)
		for _, d := range append(rows, p.sinks...) {
			name := d.name + " (sink)"
			if len(rows) > 0 && d.name == rows[0].name {
				name = d.name + " (destination)"
			}
			last := "-"
			if d.count > 0 {
				last = dur(d.last.Sub(p.lastAck))
			}
			t.Add(p.name, name, fmt.Sprintf("%d of %d", d.count, len(p.ids)), fmt.Sprintf("%.1f", d.rate()),
				fmt.Sprintf("%.2f", float64(measure.Ratio(d.rate(), p.ingestRate()))), dur(d.lag(50)), dur(d.lag(99)), dur(d.lag(100)), last)
		}
	}
	b.WriteString(t.String() + "\n")
}

// writeCPU is the CPU each process used per phase, from the phase's start until the fast destinations (and the
// sinks) had everything.
func (r *report) writeCPU(b *strings.Builder) {
	fmt.Fprintf(b, "CPU per phase, in cores of the machine's %d (from the phase's start until every fast destination and sink had everything; the harness runs the senders and every receiver, kfake and the NATS server included):\n\n", r.cpus)
	t := measure.NewTable("phase", "wall", "manager", "kube-apiserver", "etcd", "harness", "these four", "whole machine (other work included)")
	for _, p := range r.phases {
		m, a, e, hr, all := cores(p.cpuBefore, p.cpuAfter)
		f := func(v float64) string { return fmt.Sprintf("%.2f", v) }
		t.Add(p.name, dur(p.cpuAfter.at.Sub(p.cpuBefore.at)), f(m), f(a), f(e), f(hr), f(m+a+e+hr), f(all))
	}
	b.WriteString(t.String() + "\n")
}

func (r *report) writeWrites(b *strings.Builder) {
	b.WriteString("API writes per transaction (the API server's apiserver_request_total, from the phase's start until the fast destinations and the sinks had everything):\n\n")
	keys := map[string]bool{}
	per := make([]map[string]float64, len(r.phases))
	for i, p := range r.phases {
		per[i] = writes(p.writesBefore, p.writesAfter)
		for k := range per[i] {
			keys[k] = true
		}
	}
	order := make([]string, 0, len(keys))
	for k := range keys {
		order = append(order, k)
	}
	sort.Strings(order)
	t := measure.NewTable(append([]string{"phase", "all writes"}, order...)...)
	for i, p := range r.phases {
		n := float64(max(len(p.ids), 1))
		total := 0.0
		for _, v := range per[i] {
			total += v
		}
		row := []any{p.name, fmt.Sprintf("%.2f", total/n)}
		for _, k := range order {
			row = append(row, fmt.Sprintf("%.2f", per[i][k]/n))
		}
		t.Add(row...)
	}
	b.WriteString(t.String() + "\n")
}

func (r *report) writeFootprint(b *strings.Builder) {
	objects := r.cfg.cards
	for _, p := range r.phases {
		objects += len(p.ids)
	}
	t := measure.NewTable("", "before the load", "after", "peak", "growth per 1 000 objects")
	mib := func(v float64) string { return fmt.Sprintf("%.0f MiB", v/(1<<20)) }
	per := func(before, after float64) string { return mib((after - before) * 1000 / float64(max(objects, 1))) }
	t.Add("manager RSS", mib(float64(r.idle.managerRSS)), mib(float64(r.end.managerRSS)), mib(float64(r.peak.managerRSS)),
		per(float64(r.idle.managerRSS), float64(r.end.managerRSS)))
	t.Add("kube-apiserver RSS", mib(float64(r.idle.apiRSS)), mib(float64(r.end.apiRSS)), mib(float64(r.peak.apiRSS)),
		per(float64(r.idle.apiRSS), float64(r.end.apiRSS)))
	t.Add("etcd data in use", mib(r.idle.etcdInUse), mib(r.end.etcdInUse), "", per(r.idle.etcdInUse, r.end.etcdInUse))
	fmt.Fprintf(b, "Footprint (%d objects: cards and transactions; etcd before compaction holds old revisions too, so its figure is an upper bound):\n\n%s\n", objects, t.String())
	if objects > 0 {
		fmt.Fprintf(b, "etcd bytes per object: %.0f\n", (r.end.etcdInUse-r.idle.etcdInUse)/float64(objects))
	}
	if r.heap != "" {
		fmt.Fprintf(b, "\nThe manager's live heap at the end (go tool pprof -top, in-use space):\n\n```\n%s\n```\n", r.heap)
	}
}

// dur formats a duration for the report: milliseconds below a second, seconds below two minutes, else minutes.
func dur(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < 2*time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f min", d.Minutes())
}
