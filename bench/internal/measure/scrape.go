package measure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/rest"
)

// ErrNoMetric is returned by Metrics.Sum for a name the scrape does not have. Prometheus clients omit a
// labelled counter until its first increment, so a caller may read this as 0; a misspelt name looks the same.
var ErrNoMetric = errors.New("metric not in scrape")

// Metrics is one scrape of a Prometheus endpoint, by metric family name.
type Metrics map[string]*dto.MetricFamily

// Labels selects samples: every label named must have one of the listed values, and other labels may have
// any. A label a sample lacks has the value "", as in PromQL.
type Labels map[string][]string

// APIServerWrites selects the kube-apiserver's requests that write to etcd in apiserver_request_total. APPLY
// is a server-side-apply PATCH and DELETECOLLECTION a DELETE of many, reported apart; dry runs write nothing.
var APIServerWrites = Labels{
	"verb":    {"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"},
	"dry_run": {""},
}

// ParseMetrics reads the Prometheus text exposition format.
func ParseMetrics(r io.Reader) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// Scrape fetches url (a /metrics endpoint) with c, asking for the text format.
func Scrape(ctx context.Context, c *http.Client, url string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }() // a read: nothing to lose
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("scraping %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	m, err := ParseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	return m, nil
}

// ScrapeAPIServer fetches the API server's /metrics with cfg's address, TLS and credentials (reading them
// needs the nonResourceURL /metrics, which system:masters has).
func ScrapeAPIServer(ctx context.Context, cfg *rest.Config) (Metrics, error) {
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	base, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return nil, err
	}
	return Scrape(ctx, c, strings.TrimSuffix(base.String(), "/")+"/metrics")
}

// APIServerWriteCount is the number of writes the API server has answered since it started (any status code),
// for a harness to report writes per operation as the difference of two readings.
func APIServerWriteCount(ctx context.Context, cfg *rest.Config) (float64, error) {
	m, err := ScrapeAPIServer(ctx, cfg)
	if err != nil {
		return 0, err
	}
	return m.Sum("apiserver_request_total", APIServerWrites)
}

// Sum adds the values of family name's samples that sel selects: with every label given one value it is
// that one series' value. Only counters, gauges and untyped metrics have a single value to add.
func (m Metrics) Sum(name string, sel Labels) (float64, error) {
	mf, ok := m[name]
	if !ok {
		return 0, fmt.Errorf("%s: %w", name, ErrNoMetric)
	}
	value := map[dto.MetricType]func(*dto.Metric) float64{
		dto.MetricType_COUNTER: func(s *dto.Metric) float64 { return s.GetCounter().GetValue() },
		dto.MetricType_GAUGE:   func(s *dto.Metric) float64 { return s.GetGauge().GetValue() },
		dto.MetricType_UNTYPED: func(s *dto.Metric) float64 { return s.GetUntyped().GetValue() },
	}[mf.GetType()]
	if value == nil {
		return 0, fmt.Errorf("%s is a %s, not a counter or gauge", name, mf.GetType())
	}
	var sum float64
	for _, s := range mf.GetMetric() {
		if sel.match(s.GetLabel()) {
			sum += value(s)
		}
	}
	return sum, nil
}

func (sel Labels) match(pairs []*dto.LabelPair) bool {
	for name, accepted := range sel {
		value := ""
		for _, p := range pairs {
			if p.GetName() == name {
				value = p.GetValue()
				break
			}
		}
		if !slices.Contains(accepted, value) {
			return false
		}
	}
	return true
}
