// Package charts_test checks charts/cardplane: helm lint, helm template with defaults and with every option
// on, a server-side dry run of the result against a real kube-apiserver (envtest), the restricted Pod
// Security Standard, that the generated parts (CRDs, ClusterRole rules) match config/, the values schema,
// that `helm upgrade` upgrades the CRDs (crds_test.go), and packaging and pushing the chart to an OCI registry
// (package_test.go). hack/tools/alerts checks the PromQL of files/alerts.yaml and files/dashboard.json.
//
// The helm binary comes from the HELM environment variable: `make test` builds bin/helm from hack/tools and
// sets it. By hand:
//
//	make helm && HELM=$PWD/bin/helm KUBEBUILDER_ASSETS=$(hack/control-plane.sh) go test ./charts/...
package charts_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/cardplane/cardplane/internal/testenv"
)

var (
	env      *testenv.Env
	helm     string
	helmHome string
	chartDir = filepath.Join(testenv.RepoRoot(), "charts", "cardplane")
	testdata = filepath.Join(testenv.RepoRoot(), "charts", "testdata")
)

func TestMain(m *testing.M) {
	helm = os.Getenv("HELM")
	if helm == "" {
		fmt.Fprintln(os.Stderr, "HELM is not set: run the chart tests with `make test`, which builds bin/helm from hack/tools, "+
			"or `make helm && HELM=$PWD/bin/helm KUBEBUILDER_ASSETS=$(hack/control-plane.sh) go test ./charts/...`")
		os.Exit(1)
	}
	if !filepath.IsAbs(helm) { // relative to the repository root, where make runs
		helm = filepath.Join(testenv.RepoRoot(), helm)
	}
	var err error
	if _, err := os.Stat(helm); err != nil {
		fmt.Fprintf(os.Stderr, "HELM=%s: %v (build it with `make helm`)\n", helm, err)
		os.Exit(1)
	}
	if helmHome, err = os.MkdirTemp("", "cardplane-helm-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Stand-ins for the CRDs of the Prometheus Operator and cert-manager, so their objects can be dry-run too.
	if _, err = envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{Paths: []string{filepath.Join(testdata, "crds")}, ErrorIfPathMissing: true}); err != nil {
		fmt.Fprintln(os.Stderr, "installing stand-in CRDs:", err)
		_ = env.Stop()
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	_ = os.RemoveAll(helmHome)
	os.Exit(code)
}

// runHelm runs helm with its cache, config and data directories in a temporary directory.
func runHelm(t *testing.T, args ...string) []byte {
	t.Helper()
	out, stderr, err := tryHelm(args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// tryHelm runs helm as runHelm does, for commands that are meant to fail.
func tryHelm(args ...string) (stdout, stderr []byte, err error) {
	cmd := exec.Command(helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(helmHome, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(helmHome, "config"),
		"HELM_DATA_HOME="+filepath.Join(helmHome, "data"))
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	stdout, err = cmd.Output()
	return stdout, errBuf.Bytes(), err
}

// render runs helm template for release cardplane in namespace ns with extra helm arguments.
func render(t *testing.T, ns string, args ...string) []byte {
	t.Helper()
	return runHelm(t, append([]string{"template", "cardplane", chartDir, "--namespace", ns}, args...)...)
}

// objects splits a rendered manifest into objects.
func objects(t *testing.T, manifest []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("decoding rendered manifest: %v", err)
		}
		if m != nil {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}

func kinds(objs []*unstructured.Unstructured) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.GetKind())
	}
	return ks
}

// find returns the only object of kind, converted to out.
func find(t *testing.T, objs []*unstructured.Unstructured, kind string, out any) {
	t.Helper()
	findNamed(t, objs, kind, "", out)
}

// findNamed returns the only object of kind named name (any name when name is empty), converted to out.
func findNamed(t *testing.T, objs []*unstructured.Unstructured, kind, name string, out any) {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s %q in the rendered chart, got %d (kinds: %v)", kind, name, len(found), kinds(objs))
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(found[0].Object, out); err != nil {
		t.Fatalf("converting %s: %v", kind, err)
	}
}

func createNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
}

// dryRun has the API server validate and admit the manifest without storing it, and returns kubectl's output
// (warnings included).
func dryRun(t *testing.T, manifest []byte) string {
	t.Helper()
	cmd := exec.Command(env.Kubectl, "--kubeconfig", env.Kubeconfig, "apply", "--dry-run=server", "--server-side", "--force-conflicts", "-f", "-")
	cmd.Stdin = bytes.NewReader(manifest)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("server-side dry run refused the rendered chart: %v\n%s", err, out)
	}
	return string(out)
}

func TestLint(t *testing.T) {
	out := runHelm(t, "lint", "--strict", chartDir)
	if !bytes.Contains(out, []byte("0 chart(s) failed")) {
		t.Errorf("helm lint:\n%s", out)
	}
	out = runHelm(t, "lint", "--strict", chartDir, "-f", filepath.Join(testdata, "all-features.yaml"))
	if !bytes.Contains(out, []byte("0 chart(s) failed")) {
		t.Errorf("helm lint with every feature on:\n%s", out)
	}
}

func TestDefaults(t *testing.T) {
	objs := objects(t, render(t, "cardplane-system"))
	got := kinds(objs)
	slices.Sort(got)
	// The second ClusterRole is the metrics reader's; the Secret, the fourth Service and the
	// ValidatingWebhookConfiguration are the rule-set admission webhook's.
	want := []string{"ClusterRole", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "CustomResourceDefinition", "CustomResourceDefinition",
		"CustomResourceDefinition", "CustomResourceDefinition", "Deployment", "PodDisruptionBudget", "Role", "RoleBinding", "Secret", "Service", "Service", "Service", "Service",
		"ServiceAccount", "ValidatingWebhookConfiguration"}
	if !slices.Equal(got, want) {
		t.Errorf("default kinds = %v, want %v (optional features must be off by default)", got, want)
	}
	var d appsv1.Deployment
	find(t, objs, "Deployment", &d)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2", d.Spec.Replicas)
	}
	c := d.Spec.Template.Spec.Containers[0]
	for _, arg := range []string{"manager", "--leader-elect", "--metrics-bind-address=:8443", "--metrics-secure", "--health-probe-bind-address=:8081",
		"--webhook-bind-address=:9443", "--webhook-max-body-bytes=1048576", "--authorization-budget=1500ms", "--shutdown-delay=5s",
		"--webhook-tls-cert-file=/tls/tls.crt", "--webhook-tls-key-file=/tls/tls.key",
		"--spool-dir=/var/lib/cardplane/spool", "--spool-max-bytes=268435456", "--review-bind-address=:9444", "--review-rate-limit=100",
		"--ungoverned-card-decision=decline", "--admission-bind-address=:9445", "--admission-cert-dir=/admission-tls"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %v lack %s", c.Args, arg)
		}
	}
	for _, arg := range []string{"--webhook-plain-http", "--allow-loopback-destinations", "--review-plain-http"} {
		if slices.Contains(c.Args, arg) {
			t.Errorf("default args %v contain %s", c.Args, arg)
		}
	}
	if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--authorization-review-token-file") }) {
		t.Errorf("the AuthorizationReview token must be off by default: %v", c.Args)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.ReadinessProbe.HTTPGet.Port.String() != "probes" ||
		c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.LivenessProbe.HTTPGet.Port.String() != "probes" {
		t.Errorf("probes: readiness %+v liveness %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources: %+v", c.Resources)
	}
	mounts := mountPaths(d.Spec.Template.Spec)
	if !reflect.DeepEqual(mounts, map[string]string{"tls": "/tls", "admission-tls": "/admission-tls", "spool": "/var/lib/cardplane/spool"}) {
		t.Errorf("volume mounts: %v", mounts)
	}
	if v := volume(t, d.Spec.Template.Spec, "tls"); v.Secret == nil || v.Secret.SecretName != "cardplane-receiver-tls" {
		t.Errorf("TLS Secret cardplane-receiver-tls is not mounted at /tls: %+v", v)
	}
	// The root filesystem is read-only: the spool needs its own writable volume.
	if v := volume(t, d.Spec.Template.Spec, "spool"); v.EmptyDir == nil {
		t.Errorf("no writable spool volume at /var/lib/cardplane/spool: %+v", v)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if !reflect.DeepEqual(ports, map[string]int32{"webhook": 9443, "review": 9444, "admission": 9445, "metrics": 8443, "probes": 8081}) {
		t.Errorf("container ports = %v", ports)
	}
	services := map[string][2]string{}
	for _, o := range objs {
		if o.GetKind() != "Service" {
			continue
		}
		var s corev1.Service
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &s); err != nil {
			t.Fatal(err)
		}
		services[s.Name] = [2]string{fmt.Sprint(s.Spec.Ports[0].Port), s.Spec.Ports[0].TargetPort.String()}
	}
	if want := map[string][2]string{"cardplane-receiver": {"443", "webhook"}, "cardplane-review": {"443", "review"},
		"cardplane-metrics": {"8443", "metrics"}, "cardplane-admission": {"443", "admission"}}; !reflect.DeepEqual(services, want) {
		t.Errorf("services = %v, want %v", services, want)
	}
	var pdb policyv1.PodDisruptionBudget
	find(t, objs, "PodDisruptionBudget", &pdb)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.String() != "1" || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PDB minAvailable = %v, want 1", pdb.Spec.MinAvailable)
	}
}

func TestSingleReplicaHasNoPDBAndPlainHTTPNoSpool(t *testing.T) {
	objs := objects(t, render(t, "cardplane-system", "--set", "replicaCount=1", "--set", "webhook.plainHTTP=true", "--set", "spool.enabled=false"))
	if slices.Contains(kinds(objs), "PodDisruptionBudget") {
		t.Error("a PodDisruptionBudget with minAvailable 1 on one replica would block every node drain")
	}
	var d appsv1.Deployment
	find(t, objs, "Deployment", &d)
	c := d.Spec.Template.Spec.Containers[0]
	// Only the admission webhook's certificate is left to mount.
	if !slices.Contains(c.Args, "--webhook-plain-http") || slices.Contains(c.Args, "--webhook-tls-cert-file=/tls/tls.crt") || !slices.Contains(c.Args, "--spool-dir=") ||
		!reflect.DeepEqual(mountPaths(d.Spec.Template.Spec), map[string]string{"admission-tls": "/admission-tls"}) || len(d.Spec.Template.Spec.Volumes) != 1 {
		t.Errorf("plainHTTP, no spool: args %v mounts %v volumes %v", c.Args, c.VolumeMounts, d.Spec.Template.Spec.Volumes)
	}
}

// TestPersistentSpoolIsAStatefulSet: with spool.persistence each replica gets its own spool volume claim (a
// StatefulSet), so events in a deleted pod's spool are found again; the rendering passes a server dry run.
func TestPersistentSpoolIsAStatefulSet(t *testing.T) {
	const ns = "cardplane-persistent"
	createNamespace(t, ns, nil)
	manifest := render(t, ns, "--set", "spool.persistence.enabled=true", "--set", "spool.persistence.size=2Gi",
		"--set", "spool.persistence.storageClassName=fast")
	objs := objects(t, manifest)
	if slices.Contains(kinds(objs), "Deployment") {
		t.Fatal("a Deployment is rendered beside the StatefulSet")
	}
	var sts appsv1.StatefulSet
	find(t, objs, "StatefulSet", &sts)
	if len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Name != "spool" ||
		sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String() != "2Gi" ||
		*sts.Spec.VolumeClaimTemplates[0].Spec.StorageClassName != "fast" {
		t.Errorf("volume claim templates %+v", sts.Spec.VolumeClaimTemplates)
	}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.Name == "spool" {
			t.Errorf("the spool is also a pod volume (%+v): the claim would not be used", v)
		}
	}
	mounted := false
	for _, m := range sts.Spec.Template.Spec.Containers[0].VolumeMounts {
		mounted = mounted || (m.Name == "spool" && m.MountPath == "/var/lib/cardplane/spool")
	}
	if !mounted || sts.Spec.ServiceName == "" {
		t.Errorf("spool mounted %v, serviceName %q", mounted, sts.Spec.ServiceName)
	}
	if out := dryRun(t, manifest); strings.Count(out, "(server dry run)") != len(objs) {
		t.Errorf("not every object dry-run applied:\n%s", out)
	}
}

// TestDefaultsPassDryRunAndRestrictedPSS dry-runs the default rendering into a namespace that enforces (and
// warns about) the restricted Pod Security Standard, then dry-runs a Pod made from the Deployment's template,
// which the PodSecurity admission plugin rejects on any violation.
func TestDefaultsPassDryRunAndRestrictedPSS(t *testing.T) {
	const ns = "cardplane-system"
	createNamespace(t, ns, map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
		"pod-security.kubernetes.io/audit":   "restricted",
	})
	manifest := render(t, ns)
	out := dryRun(t, manifest)
	if strings.Contains(strings.ToLower(out), "warning") {
		t.Errorf("server-side dry run warned:\n%s", out)
	}
	if got, want := strings.Count(out, "(server dry run)"), len(objects(t, manifest)); got != want {
		t.Errorf("%d of %d objects dry-run applied:\n%s", got, want, out)
	}

	var d appsv1.Deployment
	find(t, objects(t, manifest), "Deployment", &d)
	pod := func() *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "manager-", Namespace: ns, Labels: d.Spec.Template.Labels},
			Spec: *d.Spec.Template.Spec.DeepCopy()}
	}
	if err := env.Client.Create(context.Background(), pod(), client.DryRunAll); err != nil {
		t.Errorf("a pod of the default Deployment is refused in a restricted namespace: %v", err)
	}
	// The check above means something only if the API server enforces Pod Security: a pod that may escalate
	// privileges must be refused.
	bad := pod()
	bad.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
	err := env.Client.Create(context.Background(), bad, client.DryRunAll)
	if err == nil || !strings.Contains(err.Error(), "PodSecurity") {
		t.Errorf("the API server does not enforce Pod Security (a pod without allowPrivilegeEscalation=false was answered %v)", err)
	}
	// Likewise the warning check: a Deployment that breaks the standard must draw a warning.
	out = dryRun(t, render(t, ns, "--set", "securityContext.allowPrivilegeEscalation=null"))
	if !strings.Contains(out, "would violate PodSecurity") {
		t.Errorf("a Deployment without allowPrivilegeEscalation=false drew no PodSecurity warning:\n%s", out)
	}
}

// TestPrometheusRuleCarriesTheAlertsFile: the PrometheusRule's groups are files/alerts.yaml's, unchanged (the
// alerts' {{ $labels }} templates must reach Prometheus, not be rendered by helm).
func TestPrometheusRuleCarriesTheAlertsFile(t *testing.T) {
	objs := objects(t, render(t, "cardplane-system", "--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.prometheusRule.labels.release=prom"))
	var rule *unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "PrometheusRule" {
			rule = o
		}
	}
	if rule == nil {
		t.Fatalf("no PrometheusRule rendered (kinds: %v)", kinds(objs))
	}
	raw, err := os.ReadFile(filepath.Join(chartDir, "files", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rule.Object["spec"].(map[string]any)["groups"], file["groups"]) {
		t.Errorf("the PrometheusRule's groups differ from files/alerts.yaml:\n%v", rule.Object["spec"])
	}
	if rule.GetLabels()["release"] != "prom" {
		t.Errorf("labels %v lack release=prom", rule.GetLabels())
	}
	if !strings.Contains(string(raw), "{{ $labels.webhook_endpoint }}") {
		t.Error("files/alerts.yaml has no {{ $labels }} template: this test no longer shows they survive helm")
	}
}

// TestDashboardConfigMapCarriesTheDashboard: with metrics.dashboard.enabled the chart renders a ConfigMap whose
// cardplane.json is files/dashboard.json byte for byte (its {{label}} legends must reach Grafana, not be
// rendered by helm), labelled for the Grafana sidecar, in the namespace asked for; the API server takes it.
func TestDashboardConfigMapCarriesTheDashboard(t *testing.T) {
	const grafanaNS = "grafana"
	createNamespace(t, grafanaNS, nil)
	manifest := render(t, "cardplane-system", "--set", "metrics.dashboard.enabled=true", "--set", "metrics.dashboard.namespace="+grafanaNS,
		"--set", "metrics.dashboard.annotations.grafana_folder=Payments", "--show-only", "templates/dashboard.yaml")
	var cm corev1.ConfigMap
	find(t, objects(t, manifest), "ConfigMap", &cm)
	raw, err := os.ReadFile(filepath.Join(chartDir, "files", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["cardplane.json"] != strings.TrimRight(string(raw), "\n") {
		t.Errorf("the ConfigMap's cardplane.json differs from files/dashboard.json")
	}
	if !strings.Contains(string(raw), "{{webhook_endpoint}}") {
		t.Error("files/dashboard.json has no {{label}} legend: this test no longer shows they survive helm")
	}
	if cm.Namespace != grafanaNS || cm.Labels["grafana_dashboard"] != "1" || cm.Annotations["grafana_folder"] != "Payments" {
		t.Errorf("namespace %q, labels %v, annotations %v", cm.Namespace, cm.Labels, cm.Annotations)
	}
	dryRun(t, manifest)
	if slices.Contains(kinds(objects(t, render(t, "cardplane-system"))), "ConfigMap") {
		t.Error("the dashboard is rendered by default")
	}
}

// TestAllFeaturesPassDryRun renders every optional feature and has the API server validate the result.
func TestAllFeaturesPassDryRun(t *testing.T) {
	const ns = "cardplane-all"
	createNamespace(t, ns, map[string]string{"pod-security.kubernetes.io/warn": "restricted"})
	manifest := render(t, ns, "-f", filepath.Join(testdata, "all-features.yaml"))
	objs := objects(t, manifest)
	for _, k := range []string{"ServiceMonitor", "PrometheusRule", "ConfigMap", "NetworkPolicy", "Certificate", "Issuer", "PodDisruptionBudget",
		"ValidatingWebhookConfiguration"} {
		if !slices.Contains(kinds(objs), k) {
			t.Errorf("every feature on renders no %s (kinds: %v)", k, kinds(objs))
		}
	}
	out := dryRun(t, manifest)
	if strings.Contains(strings.ToLower(out), "warning") {
		t.Errorf("server-side dry run warned:\n%s", out)
	}
	if got := strings.Count(out, "(server dry run)"); got != len(objs) {
		t.Errorf("%d of %d objects dry-run applied:\n%s", got, len(objs), out)
	}

	var d appsv1.Deployment
	find(t, objs, "Deployment", &d)
	spec := d.Spec.Template.Spec
	c := spec.Containers[0]
	for _, arg := range []string{"--authorization-review-token-file=/var/run/cardplane/review-token/token", "--zap-log-level=debug",
		"--authorization-budget=900ms", "--webhook-max-body-bytes=2097152"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %v lack %s", c.Args, arg)
		}
	}
	if len(spec.Volumes) != 5 || volume(t, spec, "tls").Secret.SecretName != "cardplane-receiver-tls" ||
		volume(t, spec, "review-token").Secret.SecretName != "cardplane-review-token" || volume(t, spec, "review-token").Secret.Items[0].Key != "bearer" ||
		volume(t, spec, "admission-tls").Secret.SecretName != "cardplane-admission-tls" || volume(t, spec, "metrics-tls").Secret.SecretName != "cardplane-metrics-tls" {
		t.Errorf("volumes: %+v", spec.Volumes)
	}
	if spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil || len(spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Errorf("hard anti-affinity: %+v", spec.Affinity)
	}
	if len(spec.TopologySpreadConstraints) != 1 {
		t.Errorf("topology spread: %+v", spec.TopologySpreadConstraints)
	}
	var cert unstructured.Unstructured
	findNamed(t, objs, "Certificate", "cardplane-receiver", &cert.Object)
	if s, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName"); s != "cardplane-receiver-tls" {
		t.Errorf("the Certificate writes %q, not the Secret the Deployment mounts", s)
	}
	names, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	if !slices.Contains(names, "cards.example.com") || !slices.Contains(names, "cardplane-receiver."+ns+".svc") {
		t.Errorf("certificate dnsNames = %v", names)
	}
}

// TestClusterRoleMatchesConfig checks that the chart's ClusterRole has exactly the rules controller-gen wrote to
// config/rbac/role.yaml (`make chart-rbac` copies them).
func TestClusterRoleMatchesConfig(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want rbacv1.ClusterRole
	if err := yaml.Unmarshal(bytes.TrimPrefix(src, []byte("---\n")), &want); err != nil {
		t.Fatal(err)
	}
	var got rbacv1.ClusterRole
	findNamed(t, objects(t, render(t, "cardplane-system")), "ClusterRole", "cardplane-manager", &got)
	if len(want.Rules) == 0 || !reflect.DeepEqual(got.Rules, want.Rules) {
		t.Errorf("chart ClusterRole rules differ from config/rbac/role.yaml (run `make chart-rbac`):\nchart:  %+v\nconfig: %+v", got.Rules, want.Rules)
	}
}

// TestCRDsMatchConfig checks that charts/cardplane/files/crds is a copy of config/crd/bases (`make chart-crds`),
// and that no crds/ directory is left, whose CRDs Helm would install beside the templates' (and never upgrade).
func TestCRDsMatchConfig(t *testing.T) {
	bases := filepath.Join(testenv.RepoRoot(), "config", "crd", "bases")
	want, _ := filepath.Glob(filepath.Join(bases, "*.yaml"))
	got, _ := filepath.Glob(filepath.Join(chartDir, "files", "crds", "*.yaml"))
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("chart has %d CRDs, config/crd/bases %d (run `make chart-crds`)", len(got), len(want))
	}
	for _, w := range want {
		a, _ := os.ReadFile(w)
		b, err := os.ReadFile(filepath.Join(chartDir, "files", "crds", filepath.Base(w)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("charts/cardplane/files/crds/%s differs from config/crd/bases (run `make chart-crds`): %v", filepath.Base(w), err)
		}
	}
	if _, err := os.Stat(filepath.Join(chartDir, "crds")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("charts/cardplane/crds exists (%v): Helm would install those CRDs once and never upgrade them; `make chart-crds` removes it", err)
	}
}

// mountPaths maps the manager container's volume mounts to their paths.
func mountPaths(spec corev1.PodSpec) map[string]string {
	m := map[string]string{}
	for _, vm := range spec.Containers[0].VolumeMounts {
		m[vm.Name] = vm.MountPath
	}
	return m
}

// volume returns the pod volume named name.
func volume(t *testing.T, spec corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %s in %+v", name, spec.Volumes)
	return corev1.Volume{}
}
