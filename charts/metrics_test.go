package charts_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/cardplane/cardplane/internal/testenv"
)

// scrapeEndpoint returns the ServiceMonitor's only endpoint.
func scrapeEndpoint(t *testing.T, objs []*unstructured.Unstructured) map[string]any {
	t.Helper()
	var sm unstructured.Unstructured
	find(t, objs, "ServiceMonitor", &sm.Object)
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 {
		t.Fatalf("ServiceMonitor endpoints: %v", eps)
	}
	return eps[0].(map[string]any)
}

// TestMetricsReaderRoleMatchesConfig: the chart's metrics-reader ClusterRole is config/rbac/metrics_reader_role.yaml
// (same name for release cardplane, same rules), and nothing is bound to it unless subjects are given.
func TestMetricsReaderRoleMatchesConfig(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "metrics_reader_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want rbacv1.ClusterRole
	if err := yaml.Unmarshal(src, &want); err != nil {
		t.Fatal(err)
	}
	objs := objects(t, render(t, "cardplane-system"))
	var got rbacv1.ClusterRole
	findNamed(t, objs, "ClusterRole", want.Name, &got)
	if len(want.Rules) == 0 || !reflect.DeepEqual(got.Rules, want.Rules) {
		t.Errorf("chart ClusterRole %s rules %+v, config/rbac: %+v", want.Name, got.Rules, want.Rules)
	}
	for _, o := range objs {
		if o.GetKind() == "ClusterRoleBinding" && o.GetName() == want.Name {
			t.Error("the metrics reader is bound to someone by default")
		}
	}
}

// TestMetricsOverHTTPS: by default the manager serves /metrics over HTTPS to authorized callers, and the
// ServiceMonitor scrapes it so (https, Prometheus' own ServiceAccount token, the self-signed certificate not
// verified); with a certificate Secret, a CA and a token Secret the scrape verifies the certificate for the
// Service's name and presents that token; reader subjects get a ClusterRoleBinding. The API server takes it all.
func TestMetricsOverHTTPS(t *testing.T) {
	ep := scrapeEndpoint(t, objects(t, render(t, "cardplane-system", "--set", "metrics.serviceMonitor.enabled=true")))
	if ep["scheme"] != "https" || ep["bearerTokenFile"] != "/var/run/secrets/kubernetes.io/serviceaccount/token" ||
		!reflect.DeepEqual(ep["tlsConfig"], map[string]any{"insecureSkipVerify": true}) || ep["port"] != "metrics" {
		t.Errorf("default scrape endpoint: %v", ep)
	}

	const ns = "cardplane-metrics"
	createNamespace(t, ns, nil)
	manifest := render(t, ns, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.tls.secretName=metrics-cert",
		"--set", "metrics.serviceMonitor.tlsConfig.ca.configMap.name=metrics-ca", "--set", "metrics.serviceMonitor.tlsConfig.ca.configMap.key=ca.crt",
		"--set", "metrics.serviceMonitor.authorizationSecret.name=scraper-token",
		"--set", "metrics.reader.subjects[0].kind=ServiceAccount", "--set", "metrics.reader.subjects[0].name=prometheus",
		"--set", "metrics.reader.subjects[0].namespace=monitoring")
	objs := objects(t, manifest)
	ep = scrapeEndpoint(t, objs)
	tls, _ := ep["tlsConfig"].(map[string]any)
	if tls["insecureSkipVerify"] != nil || tls["serverName"] != "cardplane-metrics."+ns+".svc" ||
		!reflect.DeepEqual(tls["ca"], map[string]any{"configMap": map[string]any{"name": "metrics-ca", "key": "ca.crt"}}) {
		t.Errorf("tlsConfig with a CA: %v", tls)
	}
	if ep["bearerTokenFile"] != nil || !reflect.DeepEqual(ep["authorization"], map[string]any{"type": "Bearer",
		"credentials": map[string]any{"name": "scraper-token", "key": "token"}}) {
		t.Errorf("authorization from a Secret: %v", ep)
	}
	var d appsv1.Deployment
	find(t, objs, "Deployment", &d)
	if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--metrics-cert-dir=/metrics-tls") ||
		mountPaths(d.Spec.Template.Spec)["metrics-tls"] != "/metrics-tls" || volume(t, d.Spec.Template.Spec, "metrics-tls").Secret.SecretName != "metrics-cert" {
		t.Errorf("metrics certificate: args %v mounts %v", d.Spec.Template.Spec.Containers[0].Args, d.Spec.Template.Spec.Containers[0].VolumeMounts)
	}
	var crb rbacv1.ClusterRoleBinding
	findNamed(t, objs, "ClusterRoleBinding", "cardplane-metrics-reader", &crb)
	if crb.RoleRef.Name != "cardplane-metrics-reader" || !reflect.DeepEqual(crb.Subjects, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prometheus", Namespace: "monitoring"}}) {
		t.Errorf("metrics reader binding: %+v", crb)
	}
	dryRun(t, manifest)
}

// TestMetricsPlainHTTP: metrics.secure=false serves plain HTTP (the manager's flag defaults to HTTPS, so it is
// passed), scraped without a token or TLS, and the reader ClusterRole, which would guard nothing, is not made.
func TestMetricsPlainHTTP(t *testing.T) {
	objs := objects(t, render(t, "cardplane-system", "--set", "metrics.secure=false", "--set", "metrics.serviceMonitor.enabled=true",
		"--set", "metrics.tls.secretName=ignored"))
	ep := scrapeEndpoint(t, objs)
	if ep["scheme"] != "http" || ep["bearerTokenFile"] != nil || ep["tlsConfig"] != nil || ep["authorization"] != nil {
		t.Errorf("plain HTTP scrape endpoint: %v", ep)
	}
	var d appsv1.Deployment
	find(t, objs, "Deployment", &d)
	args := d.Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--metrics-secure=false") || slices.Contains(args, "--metrics-secure") ||
		slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--metrics-cert-dir") }) {
		t.Errorf("args %v", args)
	}
	for _, o := range objs {
		if strings.HasSuffix(o.GetName(), "-metrics-reader") {
			t.Errorf("%s %s rendered for plain HTTP metrics", o.GetKind(), o.GetName())
		}
	}
	if _, ok := mountPaths(d.Spec.Template.Spec)["metrics-tls"]; ok {
		t.Error("metrics.tls.secretName is mounted while metrics are plain HTTP")
	}
}
