package charts_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cardplane/cardplane/internal/testenv"
)

// TestChartPackagePushAndPull runs `make chart-package chart-push` against an in-memory OCI registry, then
// pulls the chart back with helm as a user would and renders it: the archive carries the CRDs and the
// values schema.
func TestChartPackagePushAndPull(t *testing.T) {
	registry := "oci://" + testenv.StartRegistry(context.Background(), t) + "/charts"
	dist := t.TempDir()
	// -o: never rebuild helm from here, whatever the timestamps of hack/tools/go.mod say.
	mk := exec.Command("make", "-o", helm, "chart-package", "chart-push", "HELM="+helm, "CHART_DIST="+dist,
		"CHART_REGISTRY="+registry, "CHART_PUSH_FLAGS=--plain-http")
	mk.Dir = testenv.RepoRoot()
	mk.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(helmHome, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(helmHome, "config"), "HELM_DATA_HOME="+filepath.Join(helmHome, "data"))
	out, err := mk.CombinedOutput()
	if err != nil {
		t.Fatalf("make chart-package chart-push: %v\n%s", err, out)
	}
	chart := string(runHelm(t, "show", "chart", chartDir))
	version := regexp.MustCompile(`(?m)^version: (\S+)$`).FindStringSubmatch(chart)[1]
	if _, err := os.Stat(filepath.Join(dist, "cardplane-"+version+".tgz")); err != nil {
		t.Fatalf("make chart-package wrote no cardplane-%s.tgz: %v\n%s", version, err, out)
	}

	pulled := t.TempDir()
	runHelm(t, "pull", registry+"/cardplane", "--version", version, "--plain-http", "--destination", pulled)
	archive := filepath.Join(pulled, "cardplane-"+version+".tgz")
	if got := string(runHelm(t, "show", "chart", archive)); got != chart {
		t.Errorf("the pulled chart's Chart.yaml differs:\n%s\nwant:\n%s", got, chart)
	}
	manifest := string(runHelm(t, "template", "cardplane", archive, "--namespace", "cardplane-system"))
	if n, want := strings.Count(manifest, "\nkind: CustomResourceDefinition\n"), len(configCRDs(t)); n != want {
		t.Errorf("the pulled chart renders %d CRDs, want %d", n, want)
	}
	if _, stderr, err := tryHelm("template", "cardplane", archive, "--set", "replicaCount=abc"); err == nil || !strings.Contains(string(stderr), "/replicaCount") {
		t.Errorf("the pulled chart takes replicaCount=abc (no values schema?): %v %s", err, stderr)
	}
}
