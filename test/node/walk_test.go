// Package node_test walks docs/operations.md "From nothing to a first card" as a user would, command by
// command, against a real kube-apiserver and etcd, with the image built by `make image-push` into a registry
// and the chart's pods run from that image by a stand-in node (standin_test.go): runc containers in network
// namespaces of their own, authenticated to the API server only by their projected ServiceAccount tokens, so
// the chart's RBAC, leader election, probes, volumes and security context are exercised for real.
//
// It needs root, runc and iproute2 (.ci/run installs them); without them it is skipped and says why, unless
// CARDPLANE_NODE_TEST=required, as in CI.
package node_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/scheme"
	"github.com/cardplane/cardplane/internal/testenv"
)

const namespace = "cardplane-system"

func init() { ctrllog.SetLogger(logr.Discard()) } // envtest logs through controller-runtime; nothing to show

// requirements says what this machine lacks for the walk, or "".
func requirements() string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (runc and network namespaces)")
	}
	for _, bin := range []string{"runc", "ip", "openssl", "make"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	for _, env := range []string{"KUBEBUILDER_ASSETS", "HELM", "OCIIMAGE"} {
		if os.Getenv(env) == "" {
			missing = append(missing, "$"+env+" (run `make test`)")
		}
	}
	return strings.Join(missing, ", ")
}

// cluster is a control plane as a cluster's (the ServiceAccount admission plugin on, which envtest turns
// off, so admitted pods get their projected token volume; no CRDs until the install adds them), a registry,
// the cluster's controller manager and scheduler, and the stand-in node. The API server reaches admission
// webhook Services through their endpoints (--enable-aggregator-routing): there is no kube-proxy to route a
// ClusterIP from the host, while the pods' IPs on the stand-in node's bridge are.
type cluster struct {
	c          client.Client
	kubeconfig string
	registry   string
	node       *standinNode
	ctx        context.Context
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	if missing := requirements(); missing != "" {
		if os.Getenv("CARDPLANE_NODE_TEST") == "required" {
			t.Fatalf("the node tests are required here but this machine lacks: %s", missing)
		}
		t.Skipf("the node tests need %s; .ci/run installs them and sets CARDPLANE_NODE_TEST=required", missing)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: os.Getenv("KUBEBUILDER_ASSETS")}
	env.ControlPlane.GetAPIServer().Configure().Disable("disable-admission-plugins").Set("enable-aggregator-routing", "true")
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	user, err := env.AddUser(envtest.User{Name: "platform-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	apiURL, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	cl := &cluster{c: c, kubeconfig: kubeconfig, registry: testenv.StartRegistry(ctx, t), ctx: ctx,
		node: newStandinNode(t, c, apiURL.Host, cfg.CAData, absPath(os.Getenv("OCIIMAGE")))}
	startControllers(t, ctx, kubeconfig, cfg.CAData)
	cl.node.Start()
	return cl
}

// startControllers runs the cluster's kube-controller-manager and kube-scheduler (built by
// hack/control-plane.sh beside the API server) against the test's API server.
func startControllers(t *testing.T, ctx context.Context, kubeconfig string, caPEM []byte) {
	t.Helper()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	for name, args := range map[string][]string{
		"kube-controller-manager": {"--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig,
			"--authorization-kubeconfig", kubeconfig, "--leader-elect=false", "--root-ca-file", ca,
			"--bind-address=127.0.0.1", "--secure-port=0", "--controllers=*", "--use-service-account-credentials=false"},
		"kube-scheduler": {"--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig,
			"--authorization-kubeconfig", kubeconfig, "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0"},
	} {
		logPath := filepath.Join(dir, name+".log")
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, filepath.Join(assets, name), args...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v (build it with hack/control-plane.sh)", name, err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			logFile.Close()
			if t.Failed() {
				t.Logf("%s log:\n%s", name, tail(logPath))
			}
		})
	}
}

func TestGuideFromHelmInstallToFirstCard(t *testing.T) {
	root := testenv.RepoRoot()
	blocks := testenv.MarkedBlocks(t, filepath.Join(root, "docs", "operations.md"), "<!-- walk -->")
	cl := newCluster(t)
	c, node, kubeconfig, registry, ctx := cl.c, cl.node, cl.kubeconfig, cl.registry, cl.ctx
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	receiver, err := node.Balance(ctx, namespace, "cardplane-receiver")
	if err != nil {
		t.Fatal(err)
	}
	_, receiverPort, _ := net.SplitHostPort(receiver)
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Join(root, ".cache", "tls")) })

	// The guide, block by block, in one shell, as a user pasting it would run it.
	script := "set -euxo pipefail\n" + strings.Join(blocks, "\n")
	scriptCtx, stopScript := context.WithCancel(ctx)
	defer stopScript()
	node.mu.Lock()
	node.OnFail = stopScript
	node.mu.Unlock()
	cmd := exec.CommandContext(scriptCtx, "bash", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) } // kubectl wait too
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+kubeconfig,
		"PATH="+filepath.Dir(absPath(os.Getenv("HELM")))+":"+assets+":"+os.Getenv("PATH"),
		"REGISTRY="+registry,
		"VERSION=walk",
		"RECEIVER=localhost:"+receiverPort,
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("the guide's %d blocks ran in %s:\n%s", len(blocks), time.Since(start).Round(time.Second), out.String())
	if runErr != nil {
		t.Fatalf("the guide failed: %v (stand-in node errors: %v)", runErr, node.Errors())
	}
	if errs := node.Errors(); len(errs) > 0 {
		t.Fatalf("the stand-in node reported: %v", errs)
	}

	// What the guide promised: a card, from a callback through the load balancer, written by a pod that
	// authenticates as the chart's ServiceAccount.
	var cards cardsv1alpha1.CardList
	if err := c.List(ctx, &cards, client.InNamespace("payments")); err != nil {
		t.Fatal(err)
	}
	// upay-cs-approved approves a physical card, which then waits for the holder to activate it.
	if len(cards.Items) != 1 || cards.Items[0].Status.Phase != cardsv1alpha1.CardPendingActivation || cards.Items[0].Spec.Provider != cardsv1alpha1.ProviderUPay {
		t.Fatalf("cards in payments after the guide: %+v", cards.Items)
	}
	if num := cards.Items[0].Status.Number; num == nil || num.BIN == "" || num.Last4 == "" {
		t.Fatalf("card %s has no BIN and last 4: %+v", cards.Items[0].Name, num)
	}
	t.Logf("first card: %s phase %s, number %s…%s", cards.Items[0].Name, cards.Items[0].Status.Phase,
		cards.Items[0].Status.Number.BIN, cards.Items[0].Status.Number.Last4)

	pods := readyPods(t, c)
	if len(pods) != 2 {
		t.Fatalf("want the chart's 2 replicas ready, got %d", len(pods))
	}
	for _, p := range pods {
		checkContainerIdentity(t, node, p)
	}
	holder := leaseHolder(t, c)
	t.Logf("controllers' leader: %s", holder)

	// Every replica runs the receiver: callbacks through the balancer reach both, and each counts its own,
	// read over HTTPS as Prometheus would, with a token bound to the chart's metrics-reader ClusterRole.
	token := metricsReaderToken(t, root, kubeconfig)
	checkMetricsAuthorization(t, root, kubeconfig, pods[0].Status.PodIP)
	for _, example := range []string{"upay-cc-recharge", "upay-card-status", "upay-consume", "upay-cc-refund"} {
		simulate(t, kubeconfig, receiver, filepath.Join(root, ".cache", "tls", "tls.crt"), "payments/upay-main", example)
	}
	for _, p := range pods {
		eventually(t, 10*time.Second, "pod "+p.Name+" counts callbacks (the balancer sends each replica some)", func() bool {
			return metricSum(t, p.Status.PodIP, token, "cardplane_webhook_requests_total") >= 1
		})
	}
	checkRuleSetAdmission(t, cl, pods, token)

	// High availability: the leader's pod is deleted (SIGTERM, as by a drain); the other replica takes the
	// controllers over and a new pod replaces the old one.
	deleted := time.Now()
	leader := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: holder}}
	if err := c.Delete(ctx, leader); err != nil {
		t.Fatal(err)
	}
	var newHolder string
	eventually(t, 90*time.Second, "another replica holds the controllers' lease", func() bool {
		newHolder = leaseHolder(t, c)
		return newHolder != "" && newHolder != holder
	})
	t.Logf("leader %s deleted; %s took over after %s", holder, newHolder, time.Since(deleted).Round(100*time.Millisecond))
	eventually(t, 90*time.Second, "two ready replicas again", func() bool { return len(readyPods(t, c)) == 2 })
	// The new leader's controllers work: a second endpoint becomes Ready.
	mustRun(t, root, kubeconfig, "kubectl", "-n", "payments", "create", "secret", "generic", "upay-second", "--from-literal=signingKey=second-key")
	mustRun(t, root, kubeconfig, "kubectl", "-n", "payments", "label", "secret", "upay-second", "cards.cardplane.io/credentials=true")
	mustRun(t, root, kubeconfig, "bash", "-c", `kubectl -n payments apply -f - <<'EOF'
apiVersion: cards.cardplane.io/v1alpha1
kind: WebhookEndpoint
metadata:
  name: upay-second
spec:
  provider: upay
  credentialsRef:
    name: upay-second
EOF
kubectl -n payments wait --for=condition=Ready webhookendpoint/upay-second --timeout=60s`)

	// Disruption: draining the node evicts what the chart's PodDisruptionBudget allows and no more, so a
	// receiver stays ready throughout (the eviction API and the disruption controller are the cluster's own).
	eventually(t, 90*time.Second, "two ready replicas before the drain", func() bool { return len(readyPods(t, c)) == 2 })
	minReady := make(chan int)
	stop := make(chan struct{})
	go func() {
		least := 2
		for {
			select {
			case <-stop:
				minReady <- least
				return
			case <-time.After(100 * time.Millisecond):
			}
			if ready, err := listReadyPods(c, namespace); err == nil {
				least = min(least, len(ready))
			}
		}
	}()
	drain := exec.Command("kubectl", "drain", nodeName, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=20s")
	drain.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "PATH="+assets+":"+os.Getenv("PATH"))
	drainOut, drainErr := drain.CombinedOutput()
	close(stop)
	if least := <-minReady; least < 1 {
		t.Errorf("ready receivers fell to %d during the drain; the PodDisruptionBudget should keep one", least)
	}
	if drainErr == nil || !strings.Contains(string(drainOut), "disruption budget") {
		t.Errorf("kubectl drain should evict one replica and be refused the other by the disruption budget: %v\n%s", drainErr, drainOut)
	}
	t.Logf("kubectl drain, refused by the PodDisruptionBudget as expected:\n%s", lastLines(string(drainOut), 4))
	mustRun(t, root, kubeconfig, "kubectl", "uncordon", nodeName)
	eventually(t, 90*time.Second, "two ready replicas after the uncordon", func() bool { return len(readyPods(t, c)) == 2 })

	// A rolling upgrade (a new image tag) while callbacks keep coming through the balancer: none may fail.
	mustRun(t, root, kubeconfig, absPath(os.Getenv("OCIIMAGE")), "push", "--layout", filepath.Join(root, ".cache", "image", "oci"), registry+"/cardplane:walk-2")
	sent, failed := make(chan int), make(chan []string)
	stopLoad := make(chan struct{})
	go func() {
		var failures []string
		n := 0
		for {
			select {
			case <-stopLoad:
				sent <- n
				failed <- failures
				return
			default:
			}
			cmd := exec.Command(filepath.Join(root, "bin", "cardplane"), "simulate", "--endpoint", "payments/upay-main", "--example", "upay-card-status",
				"--url", "https://localhost:"+receiverPort, "--cacert", filepath.Join(root, ".cache", "tls", "tls.crt"))
			cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
			if out, err := cmd.CombinedOutput(); err != nil {
				failures = append(failures, fmt.Sprintf("%s: %v: %s", time.Now().Format("15:04:05.000"), err, lastLines(string(out), 2)))
			}
			n++
		}
	}()
	upgradeStart := time.Now()
	mustRun(t, root, kubeconfig, filepath.Dir(absPath(os.Getenv("HELM")))+"/helm", "upgrade", "cardplane", "charts/cardplane", "--namespace", namespace,
		"--reuse-values", "--set", "image.tag=walk-2")
	mustRun(t, root, kubeconfig, "kubectl", "-n", namespace, "rollout", "status", "deployment/cardplane", "--timeout=3m")
	rollout := time.Since(upgradeStart)
	time.Sleep(2 * time.Second) // callbacks after the last old pod is gone
	close(stopLoad)
	total, failures := <-sent, <-failed
	t.Logf("rolling upgrade in %s: %d callbacks through the balancer, %d failed", rollout.Round(100*time.Millisecond), total, len(failures))
	if len(failures) > 0 || total < 10 {
		t.Errorf("callbacks failed during the rolling upgrade (%d of %d):\n%s", len(failures), total, strings.Join(failures, "\n"))
	}
	for _, p := range readyPods(t, c) {
		if img := p.Spec.Containers[0].Image; !strings.HasSuffix(img, ":walk-2") {
			t.Errorf("pod %s still runs %s after the upgrade", p.Name, img)
		}
	}

	if errs := node.Errors(); len(errs) > 0 {
		t.Fatalf("the stand-in node reported: %v", errs)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func absPath(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(testenv.RepoRoot(), p)
}

func readyPods(t *testing.T, c client.Client) []corev1.Pod {
	t.Helper()
	return readyPodsIn(t, c, namespace)
}

func readyPodsIn(t *testing.T, c client.Client, ns string) []corev1.Pod {
	t.Helper()
	ready, err := listReadyPods(c, ns)
	if err != nil {
		t.Fatal(err)
	}
	return ready
}

// listReadyPods lists the cardplane pods in ns that are ready and not terminating.
func listReadyPods(c client.Client, ns string) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := c.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/name": "cardplane"}); err != nil {
		return nil, err
	}
	var ready []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && podReady(&p) {
			ready = append(ready, p)
		}
	}
	return ready, nil
}

// checkContainerIdentity reads the container's process from the host: the chart's user, no capabilities,
// no privilege escalation, and a root file system it cannot write.
func checkContainerIdentity(t *testing.T, node *standinNode, p corev1.Pod) {
	t.Helper()
	run := node.Pod(p.Name)
	if run == nil {
		t.Fatalf("pod %s is not run by the stand-in node", p.Name)
	}
	pid, err := node.containerPID(run)
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	if fields["Uid"] != "65532 65532 65532 65532" || fields["Gid"] != "65532 65532 65532 65532" ||
		fields["CapEff"] != "0000000000000000" || fields["NoNewPrivs"] != "1" {
		t.Errorf("pod %s process: Uid %q Gid %q CapEff %q NoNewPrivs %q", p.Name, fields["Uid"], fields["Gid"], fields["CapEff"], fields["NoNewPrivs"])
	}
	mountinfo, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mountinfo), "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[4] == "/" && !strings.HasPrefix(f[5], "ro") {
			t.Errorf("pod %s: root file system mounted %s, want read-only", p.Name, f[5])
		}
	}
}

func leaseHolder(t *testing.T, c client.Client) string {
	t.Helper()
	l := &coordinationv1.Lease{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: "cardplane-controllers.cards.cardplane.io"}, l); err != nil {
		return ""
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	pod, _, _ := strings.Cut(*l.Spec.HolderIdentity, "_") // controller-runtime's identity is hostname_uuid
	return pod
}

// simulate sends an example callback to endpoint through the balancer at receiver, trusting cacert.
func simulate(t *testing.T, kubeconfig, receiver, cacert, endpoint, example string) {
	t.Helper()
	root := testenv.RepoRoot()
	mustRun(t, root, kubeconfig, filepath.Join(root, "bin", "cardplane"), "simulate", "--endpoint", endpoint, "--example", example,
		"--url", "https://localhost:"+receiver[strings.LastIndex(receiver, ":")+1:], "--cacert", cacert)
}

func mustRun(t *testing.T, dir, kubeconfig, name string, args ...string) {
	t.Helper()
	mustOutput(t, dir, kubeconfig, name, args...)
}

// mustOutput runs a command as mustRun does and returns its standard output.
func mustOutput(t *testing.T, dir, kubeconfig, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "PATH="+os.Getenv("KUBEBUILDER_ASSETS")+":"+os.Getenv("PATH"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// metricsReaderToken makes a ServiceAccount, binds it to the chart's cardplane-metrics-reader ClusterRole and
// returns a token of it, as docs/operations.md shows for scraping by hand.
func metricsReaderToken(t *testing.T, root, kubeconfig string) string {
	t.Helper()
	mustRun(t, root, kubeconfig, "kubectl", "-n", namespace, "create", "serviceaccount", "metrics-scraper")
	mustRun(t, root, kubeconfig, "kubectl", "create", "clusterrolebinding", "metrics-scraper", "--clusterrole=cardplane-metrics-reader",
		"--serviceaccount="+namespace+":metrics-scraper")
	return strings.TrimSpace(mustOutput(t, root, kubeconfig, "kubectl", "-n", namespace, "create", "token", "metrics-scraper"))
}

// checkMetricsAuthorization: /metrics answers 401 without a token and 403 to a ServiceAccount that is not bound to
// the metrics reader (the manager asks the API server: TokenReview, then SubjectAccessReview).
func checkMetricsAuthorization(t *testing.T, root, kubeconfig, podIP string) {
	t.Helper()
	stranger := strings.TrimSpace(mustOutput(t, root, kubeconfig, "kubectl", "-n", namespace, "create", "token", "default"))
	for token, want := range map[string]int{"": http.StatusUnauthorized, stranger: http.StatusForbidden} {
		resp := scrape(t, podIP, token)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("/metrics with token %.8q… answered %d, want %d", token, resp.StatusCode, want)
		}
	}
}

// metricsClient scrapes the pods over HTTPS without verifying their certificate: the chart sets no
// metrics.tls.secretName, so each manager serves one it signed itself, as the ServiceMonitor's default assumes.
var metricsClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the manager's self-signed certificate

// scrape GETs a pod's /metrics on the chart's port 8443, presenting token when it is not empty.
func scrape(t *testing.T, podIP, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "https://"+net.JoinHostPort(podIP, "8443")+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// metricSum adds up the samples of a metric (every label set) on a pod's metrics port, read with token.
func metricSum(t *testing.T, podIP, token, name string) float64 {
	t.Helper()
	resp := scrape(t, podIP, token)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics of %s answered %s", podIP, resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}

func eventually(t *testing.T, timeout time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
