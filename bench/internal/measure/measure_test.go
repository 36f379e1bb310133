package measure

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentileIsNearestRank(t *testing.T) {
	oneTo := func(n int) []time.Duration {
		var s []time.Duration
		for i := 1; i <= n; i++ {
			s = append(s, ms(i))
		}
		return s
	}
	for _, tc := range []struct {
		sorted        []time.Duration
		p50, p90, p99 time.Duration
	}{
		{oneTo(1), ms(1), ms(1), ms(1)},
		{oneTo(2), ms(1), ms(2), ms(2)},
		{oneTo(3), ms(2), ms(3), ms(3)},
		{oneTo(10), ms(5), ms(9), ms(10)},
		{oneTo(100), ms(50), ms(90), ms(99)},
		{oneTo(1500), ms(750), ms(1350), ms(1485)},
	} {
		n := len(tc.sorted)
		if got := [3]time.Duration{percentile(tc.sorted, 50), percentile(tc.sorted, 90), percentile(tc.sorted, 99)}; got != [3]time.Duration{tc.p50, tc.p90, tc.p99} {
			t.Errorf("n=%d: p50/p90/p99 = %v, want %v %v %v", n, got, tc.p50, tc.p90, tc.p99)
		}
	}
}

func TestRecorderFromManyGoroutines(t *testing.T) {
	rec := NewRecorder()
	boom := errors.New("boom")
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Go(func() {
			for i := 1; i <= 10; i++ {
				rec.Record(ms(g*10+i), nil) // 1..100 ms across the goroutines
			}
			rec.Record(time.Hour, boom) // a failure's latency counts nowhere
		})
	}
	wg.Wait()
	time.Sleep(10 * time.Millisecond)
	rec.Stop()
	rec.Record(ms(1), nil) // after Stop: counted, but the interval stays
	s := rec.Summary()
	if s.Count != 101 || s.Errors != 10 || !errors.Is(s.FirstErr, boom) {
		t.Fatalf("count %d errors %d first %v, want 101, 10, boom", s.Count, s.Errors, s.FirstErr)
	}
	if s.P50 != ms(50) || s.P90 != ms(90) || s.P99 != ms(99) || s.Max != ms(100) {
		t.Errorf("p50 %v p90 %v p99 %v max %v", s.P50, s.P90, s.P99, s.Max)
	}
	if want := (ms(5050) + ms(1)) / 101; s.Mean != want {
		t.Errorf("mean %v, want %v", s.Mean, want)
	}
	if s.Elapsed < ms(10) || s.Elapsed > time.Second {
		t.Errorf("elapsed %v", s.Elapsed)
	}
	if again := rec.Summary(); again.Elapsed != s.Elapsed {
		t.Errorf("interval moved after Stop: %v then %v", s.Elapsed, again.Elapsed)
	}
	if want := 101 / s.Elapsed.Seconds(); s.Rate() != want {
		t.Errorf("rate %v, want %v", s.Rate(), want)
	}
}

func TestEmptySummary(t *testing.T) {
	if s := (Summary{}); s.Rate() != 0 {
		t.Errorf("rate of nothing = %v", s.Rate())
	}
	rec := NewRecorder()
	rec.Record(ms(3), errors.New("x"))
	if s := rec.Summary(); s.Count != 0 || s.Errors != 1 || s.Max != 0 || s.Rate() != 0 {
		t.Errorf("%+v", s)
	}
}

// calls records which indices an Op was called with.
type calls struct {
	mu   sync.Mutex
	seen map[int]int
}

func (c *calls) op(d time.Duration, fail func(i int) bool) Op {
	c.seen = map[int]int{}
	return func(i int) error {
		c.mu.Lock()
		c.seen[i]++
		c.mu.Unlock()
		time.Sleep(d)
		if fail != nil && fail(i) {
			return fmt.Errorf("call %d failed", i)
		}
		return nil
	}
}

// eachOnce checks that the calls were numbered 0..n-1, each once.
func (c *calls) eachOnce(t *testing.T, n int) {
	t.Helper()
	if len(c.seen) != n {
		t.Fatalf("%d distinct calls, want %d", len(c.seen), n)
	}
	for i := range n {
		if c.seen[i] != 1 {
			t.Fatalf("call %d made %d times", i, c.seen[i])
		}
	}
}

func TestClosedCount(t *testing.T) {
	var c calls
	s := Closed{Workers: 4, Count: 50}.Run(context.Background(), c.op(time.Millisecond, func(i int) bool { return i%10 == 0 }))
	c.eachOnce(t, 50)
	if s.Count != 45 || s.Errors != 5 || s.FirstErr == nil {
		t.Errorf("count %d errors %d first %v, want 45, 5, an error", s.Count, s.Errors, s.FirstErr)
	}
	if s.P50 < time.Millisecond {
		t.Errorf("p50 %v shorter than the call", s.P50)
	}
}

func TestClosedDurationAndContext(t *testing.T) {
	var c calls
	start := time.Now()
	s := Closed{Workers: 2, Duration: 50 * time.Millisecond}.Run(context.Background(), c.op(time.Millisecond, nil))
	if took := time.Since(start); took < 50*time.Millisecond || took > time.Second {
		t.Errorf("ran %v for a 50ms duration", took)
	}
	if s.Count == 0 || s.Count != len(c.seen) {
		t.Errorf("count %d, calls %d", s.Count, len(c.seen))
	}
	c.eachOnce(t, s.Count)

	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	s = Closed{Workers: 3}.Run(ctx, func(int) error {
		if n.Add(1) == 20 {
			cancel()
		}
		return nil
	})
	if s.Count < 20 || s.Count > 22 {
		t.Errorf("%d calls after cancelling at the 20th (3 workers)", s.Count)
	}
}

func TestOpenKeepsTheSchedule(t *testing.T) {
	var c calls
	s := Open{Rate: 1000, Duration: 100 * time.Millisecond}.Run(context.Background(), c.op(5*time.Millisecond, nil))
	c.eachOnce(t, 100)
	if s.Count != 100 || s.Errors != 0 {
		t.Fatalf("count %d errors %d", s.Count, s.Errors)
	}
	// Calls overlap (5 ms each, one due every ms), so the run takes about the schedule, not 100 x 5 ms.
	if s.Elapsed > 400*time.Millisecond {
		t.Errorf("elapsed %v: calls did not overlap", s.Elapsed)
	}
}

func TestOpenCountsQueueingInLatency(t *testing.T) {
	var c calls
	// 10 calls due every 5 ms, each taking 20 ms, one at a time: the last is due at 45 ms but starts at
	// about 180 ms, and its latency must say so.
	s := Open{Rate: 200, Duration: 50 * time.Millisecond, MaxInFlight: 1}.Run(context.Background(), c.op(20*time.Millisecond, nil))
	c.eachOnce(t, 10)
	if s.Max < 130*time.Millisecond {
		t.Errorf("max latency %v: the queueing behind busy calls was not counted", s.Max)
	}
	if s := (Open{Duration: time.Second}).Run(context.Background(), c.op(0, nil)); s.Count != 0 {
		t.Errorf("rate 0 made %d calls", s.Count)
	}
}

func TestTableIsAlignedMarkdown(t *testing.T) {
	tab := NewTable("server", "concurrency", "decisions", "errors", "decisions/s", "p50", "p99", "max")
	tab.AddSummary(Summary{Count: 33353, Elapsed: 4 * time.Second, P50: 93 * time.Microsecond, P99: 410 * time.Microsecond, Max: 8 * time.Millisecond}, "cardplane", 1)
	tab.AddSummary(Summary{Count: 7, Errors: 2, Elapsed: time.Second, P50: ms(160), P99: 225700 * time.Microsecond, Max: ms(230)}, "OPA", 64)
	want := `| server    | concurrency | decisions | errors | decisions/s | p50      | p99      | max      |
| --------- | ----------- | --------- | ------ | ----------- | -------- | -------- | -------- |
| cardplane | 1           | 33353     | 0      | 8338        | 93 µs    | 410 µs   | 8.0 ms   |
| OPA       | 64          | 7         | 2      | 7           | 160.0 ms | 225.7 ms | 230.0 ms |
`
	if got := tab.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0 µs", 999 * time.Microsecond: "999 µs", time.Millisecond: "1.0 ms", 55_449 * time.Microsecond: "55.4 ms", 3 * time.Second: "3000.0 ms",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestRatio(t *testing.T) {
	if got := Ratio(261, 303).Percent(); got != "86%" {
		t.Errorf("percent %q", got)
	}
	if got := Ratio(8338, 2684).Times(); got != "3.1×" {
		t.Errorf("times %q", got)
	}
	if r := Ratio(5, 0); !math.IsNaN(float64(r)) || r.Percent() != "n/a" || r.Times() != "n/a" {
		t.Errorf("no baseline: %v %q %q", float64(r), r.Percent(), r.Times())
	}
}

func TestRSS(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	status := write("status", "Name:\tkube-apiserver\nVmPeak:\t 2000000 kB\nVmRSS:\t  123456 kB\nRssAnon:\t  100000 kB\n")
	if got, err := rssFrom(status); err != nil || got != 123456*1024 {
		t.Errorf("rss = %d, %v; want %d", got, err, 123456*1024)
	}
	for name, text := range map[string]string{
		"kernel-thread": "Name:\tkthreadd\nState:\tS (sleeping)\n",
		"bad-unit":      "VmRSS:\t 12 MB\n",
		"bad-number":    "VmRSS:\t 1x2 kB\n",
	} {
		if _, err := rssFrom(write(name, text)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := rssFrom(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: %v", err)
	}
	if got, err := RSS(os.Getpid()); err != nil || got < 1<<20 {
		t.Errorf("RSS of this test process = %d, %v", got, err)
	}
}

const exposition = `# HELP apiserver_request_total [STABLE] Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="cards.cardplane.io",resource="cards",verb="POST"} 1500
apiserver_request_total{code="200",component="apiserver",group="cards.cardplane.io",resource="cards",subresource="status",verb="PATCH"} 1490
apiserver_request_total{code="409",component="apiserver",group="cards.cardplane.io",resource="cards",subresource="status",verb="PATCH"} 10
apiserver_request_total{code="201",component="apiserver",dry_run="All",group="",resource="configmaps",verb="POST"} 7
apiserver_request_total{code="200",component="apiserver",group="",resource="configmaps",verb="APPLY"} 3
apiserver_request_total{code="200",component="apiserver",group="",resource="events",verb="DELETECOLLECTION"} 1
apiserver_request_total{code="200",component="apiserver",group="",resource="cards",verb="PUT"} 4
apiserver_request_total{code="200",component="apiserver",group="",resource="cards",verb="DELETE"} 2
apiserver_request_total{code="200",component="apiserver",group="cards.cardplane.io",resource="cards",verb="LIST"} 40
apiserver_request_total{code="200",component="apiserver",group="cards.cardplane.io",resource="cards",verb="WATCH"} 5
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 2.5e+08
# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_bucket{verb="POST",le="0.1"} 3
apiserver_request_duration_seconds_bucket{verb="POST",le="+Inf"} 4
apiserver_request_duration_seconds_sum{verb="POST"} 0.5
apiserver_request_duration_seconds_count{verb="POST"} 4
`

func TestMetricsSum(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		sel  Labels
		want float64
	}{
		{"apiserver_request_total", APIServerWrites, 1500 + 1490 + 10 + 3 + 1 + 4 + 2}, // no dry run, no reads
		{"apiserver_request_total", nil, 1500 + 1490 + 10 + 7 + 3 + 1 + 4 + 2 + 40 + 5},
		{"apiserver_request_total", Labels{"verb": {"PATCH"}, "code": {"200"}, "subresource": {"status"}}, 1490},
		{"apiserver_request_total", Labels{"verb": {"GET"}}, 0},
		{"process_resident_memory_bytes", nil, 2.5e8},
	} {
		if got, err := m.Sum(tc.name, tc.sel); err != nil || got != tc.want {
			t.Errorf("Sum(%s, %v) = %v, %v; want %v", tc.name, tc.sel, got, err, tc.want)
		}
	}
	if _, err := m.Sum("apiserver_requests_total", nil); !errors.Is(err, ErrNoMetric) {
		t.Errorf("absent family: %v", err)
	}
	if _, err := m.Sum("apiserver_request_duration_seconds", nil); err == nil {
		t.Error("a histogram was summed")
	}
	if _, err := ParseMetrics(strings.NewReader("not a metric line {\n")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestScrapeAPIServer(t *testing.T) {
	var accept, auth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accept.Store(r.Header.Get("Accept"))
		auth.Store(r.Header.Get("Authorization"))
		if r.URL.Path != "/metrics" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(exposition))
	}))
	defer srv.Close()
	ctx := context.Background()

	got, err := APIServerWriteCount(ctx, &rest.Config{Host: srv.URL, BearerToken: "t0ken"})
	if err != nil || got != 3010 {
		t.Fatalf("writes = %v, %v; want 3010", got, err)
	}
	if a := auth.Load(); a != "Bearer t0ken" {
		t.Errorf("credentials not sent: Authorization %q", a)
	}
	if a := accept.Load().(string); !strings.HasPrefix(a, "text/plain") {
		t.Errorf("Accept %q, want the text format", a)
	}
	if _, err := Scrape(ctx, srv.Client(), srv.URL+"/other"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("a refused scrape: %v", err)
	}
}

func TestFindProcess(t *testing.T) {
	proc := t.TempDir()
	for pid, cmdline := range map[string]string{
		"101":  "kube-apiserver\x00--secure-port=6443\x00--etcd-servers=http://127.0.0.1:2379\x00",
		"102":  "kube-apiserver\x00--secure-port=7443\x00",
		"103":  "etcd\x00--listen-client-urls=http://127.0.0.1:2379\x00",
		"self": "not a pid",
	} {
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, "cmdline"), []byte(cmdline), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if pid, err := findProcess(proc, "kube-apiserver", "--secure-port=7443"); err != nil || pid != 102 {
		t.Errorf("apiserver on 7443: %d, %v", pid, err)
	}
	if pid, err := findProcess(proc, "etcd", "--listen-client-urls=http://127.0.0.1:2379"); err != nil || pid != 103 {
		t.Errorf("etcd: %d, %v", pid, err)
	}
	if _, err := findProcess(proc, "kube-apiserver"); err == nil {
		t.Error("two matches: no error")
	}
	if _, err := findProcess(proc, "kube-scheduler"); err == nil {
		t.Error("no match: no error")
	}
}
