package alerts

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// dashboard is the part of Grafana's dashboard JSON model the checks read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Datasource  *datasource `json:"datasource"`
	GridPos     struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets     []target `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Custom struct {
				ThresholdsStyle struct {
					Mode string `json:"mode"`
				} `json:"thresholdsStyle"`
			} `json:"custom"`
			Thresholds struct {
				Steps []struct {
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

type target struct {
	RefID        string      `json:"refId"`
	Expr         string      `json:"expr"`
	LegendFormat string      `json:"legendFormat"`
	Datasource   *datasource `json:"datasource"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasource     `json:"datasource"`
}

// The data source is a variable, so the dashboard works in any Grafana whatever its Prometheus is called.
const datasourceUID = "${datasource}"

func dashboardFile() string {
	return filepath.Join(filepath.Dir(alertsFile()), "dashboard.json")
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile())
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
		t.Fatalf("dashboard.json lacks a uid, title, schemaVersion or panels")
	}
	return d
}

// grafanaMacros are replaced by what Grafana would put there before Prometheus parses a query.
var grafanaMacros = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// TestDashboardReadsWhatTheCodeExports parses every query of files/dashboard.json (panels and variables) with
// Prometheus' parser and checks it as the alerts are checked (TestAlertsReadWhatTheCodeExports): the metrics,
// labels and values it reads exist, and each legend's {{label}} is on the query's result. Every metric
// cardplane declares must be on the dashboard, so a new one is not forgotten.
func TestDashboardReadsWhatTheCodeExports(t *testing.T) {
	inv := loadInventory(t)
	d := loadDashboard(t)
	read := map[string]bool{}
	queries := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			queries++
			out, families, problems := checkQuery(inv, grafanaMacros.Replace(tg.Expr))
			problems = append(problems, checkTemplate(tg.LegendFormat, legendTemplateLabels, out)...)
			for _, pr := range problems {
				t.Errorf("panel %q, query %s: %s\n\t%s", p.Title, tg.RefID, pr, tg.Expr)
			}
			for f := range families {
				read[f] = true
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			queries++
			for _, pr := range checkVariable(inv, v) {
				t.Errorf("variable %s: %s", v.Name, pr)
			}
		}
	}
	for name, m := range inv.metrics {
		if strings.HasPrefix(name, "cardplane_") && !read[name] {
			t.Errorf("%s (%s) is on no panel of the dashboard", name, m.source)
		}
	}
	if queries < 30 {
		t.Errorf("only %d queries found in dashboard.json", queries)
	}
	t.Logf("%d queries read %d metrics", queries, len(read))
}

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// checkVariable checks a query variable's label_values(query, label): the label must be on the query's result.
func checkVariable(inv *inventory, v variable) []string {
	var q struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &q); err != nil {
		return []string{fmt.Sprintf("query is not {\"query\": ...}: %v", err)}
	}
	m := labelValues.FindStringSubmatch(q.Query)
	if m == nil {
		return []string{fmt.Sprintf("%q is not label_values(query, label)", q.Query)}
	}
	out, _, problems := checkQuery(inv, m[1])
	if !out[m[2]] {
		problems = append(problems, fmt.Sprintf("label_values reads %q, which %s does not carry (%v)", m[2], m[1], out.names()))
	}
	if v.Datasource == nil || v.Datasource.UID != datasourceUID {
		problems = append(problems, fmt.Sprintf("data source %+v, want uid %s", v.Datasource, datasourceUID))
	}
	return problems
}

// TestDashboardIsWellFormed: the data source is the ${datasource} variable everywhere (a dashboard naming a
// data source UID works only in the Grafana it was exported from), panel ids are unique and panels do not
// overlap on Grafana's 24-column grid.
func TestDashboardIsWellFormed(t *testing.T) {
	d := loadDashboard(t)
	if !slices.ContainsFunc(d.Templating.List, func(v variable) bool {
		return v.Name == "datasource" && v.Type == "datasource" && string(v.Query) == `"prometheus"`
	}) {
		t.Error("no datasource variable of type datasource for prometheus")
	}
	ids := map[int]string{}
	cells := map[[2]int]string{}
	for _, p := range d.Panels {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share the id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is off the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, taken := cells[[2]int{x, y}]; taken {
					t.Errorf("panels %q and %q overlap at (%d, %d)", other, p.Title, x, y)
					x, y = g.X+g.W, g.Y+g.H
				}
				cells[[2]int{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Description == "" {
			t.Errorf("panel %q has no description (what it shows and what to do about it)", p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != datasourceUID {
			t.Errorf("panel %q: data source %+v, want uid %s", p.Title, p.Datasource, datasourceUID)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != datasourceUID || tg.Expr == "" {
				t.Errorf("panel %q, query %s: data source %+v, expr %q", p.Title, tg.RefID, tg.Datasource, tg.Expr)
			}
		}
	}
}

// TestDashboardShowsTheAuthorizationBudget: the decision-time panel draws the chart's default budget
// (manager.authorizationBudget) as a threshold line, and the stand-in panel counts decisions past that same
// bound, so the picture changes with the default.
func TestDashboardShowsTheAuthorizationBudget(t *testing.T) {
	values, err := os.ReadFile(filepath.Join(filepath.Dir(dashboardFile()), "..", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s+authorizationBudget:\s*(\S+)`).FindSubmatch(values)
	if m == nil {
		t.Fatal("values.yaml has no manager.authorizationBudget")
	}
	budget, err := time.ParseDuration(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	line, counted := false, false
	for _, p := range loadDashboard(t).Panels {
		for _, tg := range p.Targets {
			if strings.Contains(tg.Expr, "histogram_quantile(0.99") && strings.Contains(tg.Expr, "cardplane_authorization_duration_seconds_bucket") {
				steps := p.FieldConfig.Defaults.Thresholds.Steps
				line = p.FieldConfig.Defaults.Custom.ThresholdsStyle.Mode == "line" && len(steps) > 1 &&
					steps[len(steps)-1].Value != nil && *steps[len(steps)-1].Value == budget.Seconds()
			}
			counted = counted || strings.Contains(tg.Expr, fmt.Sprintf(`cardplane_authorization_duration_seconds_bucket{job=~"$job", le="%g"}`, budget.Seconds()))
		}
	}
	if !line {
		t.Errorf("no p99 decision-time panel with a threshold line at the budget, %gs", budget.Seconds())
	}
	if !counted {
		t.Errorf("no panel counts decisions past le=\"%g\", the budget", budget.Seconds())
	}
}
