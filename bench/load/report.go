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
	fast                      []delivered
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
		got := delivered{name: d.name}
		for _, id := range p.ids {
			at, ok := d.settledAt(id)
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
		p.fast = append(p.fast, got)
	}
	for _, id := range p.ids {
		if _, ok := h.slow.settledAt(id); ok {
			p.slowDelivered++
		}
	}
}

// ingestRate is acknowledged transactions per second from the first acknowledgement to the last.
func (p *phase) ingestRate() float64 {
	return rate(len(p.ids), p.lastAck.Sub(p.firstAck))
}

// projectionRate is the slowest fast destination's rate, first delivery to last.
func (p *phase) projectionRate() float64 {
	slowest := 0.0
	for i, d := range p.fast {
		if r := rate(d.count, d.last.Sub(d.first)); i == 0 || r < slowest {
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
	i := (pct*len(all)+99)/100 - 1
	return all[max(0, min(i, len(all)-1))]
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
	r.writeWrites(&b)
	r.writeFootprint(&b)
	return b.String()
}

func (r *report) writeWrites(b *strings.Builder) {
	b.WriteString("API writes per transaction (the API server's apiserver_request_total, from the phase's start until the fast destinations had everything):\n\n")
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
