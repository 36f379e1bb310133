//go:build !nodev

package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cardplane/cardplane/internal/testenv"
)

// TestControlPlaneVersionMatchesHack keeps `cardplane dev`'s default asset path in step with what
// hack/control-plane.sh builds.
func TestControlPlaneVersionMatchesHack(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "hack", "k8s", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want := "k8s.io/kubernetes " + controlPlaneVersion
	if !strings.Contains(string(data), want) {
		t.Fatalf("hack/k8s/go.mod does not require %q: update controlPlaneVersion in dev.go", want)
	}
}

// TestDevRunsAndStopsCleanly runs the real binary the way `make demo` does, looks at the samples with kubectl
// through the kubeconfig it printed, then presses Ctrl-C and checks that no process is left behind.
func TestDevRunsAndStopsCleanly(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run the tests with `make test`")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "cardplane")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	receiverAddr, reviewAddr, metricsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	// The sample endpoint delivers to the demo destination on 127.0.0.1:18090; a `make demo` running on this
	// machine may hold that port, and then the delivery check below cannot run.
	destination := "127.0.0.1:18090"
	if l, err := net.Listen("tcp", destination); err != nil {
		t.Logf("port 18090 is busy (a running make demo?): the projection check is not performed")
		destination = ""
	} else {
		l.Close()
	}
	// The sample CardEventSinks deliver to the demo sinks on fixed loopback ports too.
	demoSinkFlags := map[string]string{"demo-nats-address": "127.0.0.1:14222", "demo-kafka-address": "127.0.0.1:19092",
		"demo-cloudevents-address": "127.0.0.1:18091"}
	sinksChecked := destination != ""
	var sinkArgs []string
	for flag, addr := range demoSinkFlags {
		if l, err := net.Listen("tcp", addr); err != nil {
			t.Logf("%s is busy (a running make demo?): the demo sinks' deliveries are not checked", addr)
			sinksChecked, addr = false, ""
		} else {
			l.Close()
		}
		sinkArgs = append(sinkArgs, "--"+flag+"="+addr)
	}
	cmd := exec.Command(bin, append([]string{"dev", "--assets", assets, "--kubeconfig-out", kubeconfig, "--demo-destination-address=" + destination,
		"--metrics-bind-address=" + metricsAddr, "--metrics-secure", "--health-probe-bind-address=0", "--webhook-bind-address=" + receiverAddr, "--review-bind-address=" + reviewAddr}, sinkArgs...)...)
	banner := startDev(t, cmd)
	if !strings.Contains(banner, "export KUBECONFIG="+kubeconfig) {
		t.Errorf("banner does not print the kubeconfig path:\n%s", banner)
	}
	children := childPIDs(cmd.Process.Pid)
	if len(children) < 2 {
		t.Errorf("expected etcd and kube-apiserver as children, found PIDs %v", children)
	}

	kubectl := filepath.Join(assets, "kubectl")
	checkSamples(t, kubectl, kubeconfig)
	checkHolderBeforeCard(t, kubectl, kubeconfig)
	checkSimulatedCallback(t, bin, kubectl, kubeconfig, receiverAddr)
	checkGovernedFromFirstSight(t, bin, kubeconfig, receiverAddr, reviewAddr, filepath.Join(dir, "review-token"))
	checkDecisionLog(t, filepath.Join(dir, "decisions.jsonl"))
	checkMetricsAuth(t, kubectl, kubeconfig, metricsAddr)
	if destination != "" {
		checkDemoDestination(t, filepath.Join(dir, "destination.log"))
	}
	checkSampleSinks(t, kubectl, kubeconfig, dir, sinksChecked)
	stopDev(t, cmd, children)
}

// startDev starts `cardplane dev` and returns its banner once it is ready.
func startDev(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &lockedBuffer{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	ready := make(chan string, 1)
	go func() {
		var seen strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			seen.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Press Ctrl-C") {
				ready <- seen.String()
			}
		}
	}()
	select {
	case banner := <-ready:
		return banner
	case <-time.After(2 * time.Minute):
		t.Fatalf("cardplane dev did not become ready; stderr:\n%s", cmd.Stderr)
	}
	return ""
}

// checkHolderBeforeCard: the demo sends a BananaTech KYC result and then the holder's first card, so
// `kubectl get cardholders` shows a holder whose KYC arrived before its card: Approved, with one card.
func checkHolderBeforeCard(t *testing.T, kubectl, kubeconfig string) {
	t.Helper()
	var out []byte
	deadline := time.Now().Add(time.Minute)
	for {
		var err error
		out, err = exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "cardholders", "-n", "default", "--no-headers").CombinedOutput()
		fields := strings.Fields(string(out))
		if err == nil && len(fields) >= 5 && fields[2] == "61207" && fields[3] == "Approved" && fields[4] == "1" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl get cardholders does not show holder 61207 Approved with 1 card: %v\n%s", err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkMetricsAuth: with --metrics-secure, /metrics is HTTPS and answers only a bearer token the API server
// authenticates and authorizes for the non-resource URL /metrics: 401 without a token, 403 for a
// ServiceAccount without the grant, the metrics for one with it.
func checkMetricsAuth(t *testing.T, kubectl, kubeconfig, addr string) {
	t.Helper()
	run := func(args ...string) string {
		out, err := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...).Output()
		if err != nil {
			t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	run("create", "serviceaccount", "scraper", "-n", "default")
	run("create", "serviceaccount", "stranger", "-n", "default")
	run("create", "clusterrole", "cardplane-metrics-reader", "--verb=get", "--non-resource-url=/metrics")
	run("create", "clusterrolebinding", "scraper-metrics", "--clusterrole=cardplane-metrics-reader", "--serviceaccount=default:scraper")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the self-signed serving certificate
	get := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET /metrics: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without a token answered %d, want 401", code)
	}
	if code, _ := get(run("create", "token", "stranger", "-n", "default")); code != http.StatusForbidden {
		t.Errorf("/metrics for a ServiceAccount without the grant answered %d, want 403", code)
	}
	if code, body := get(run("create", "token", "scraper", "-n", "default")); code != http.StatusOK || !strings.Contains(body, "cardplane_webhook_requests_total") {
		t.Errorf("/metrics for the scraper answered %d (%d bytes), want 200 with cardplane's metrics", code, len(body))
	}
}

// checkDecisionLog: the demo writes every decision to decisions.jsonl beside the kubeconfig; the review of
// checkGovernedFromFirstSight is there.
func checkDecisionLog(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(data), `"source":"review"`) && strings.Contains(string(data), `"decisionID"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the decision log %s holds no review decision: %v\n%s", path, err, data)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkSamples waits for the samples to be applied and all sample endpoints to be Ready.
func checkSamples(t *testing.T, kubectl, kubeconfig string) {
	t.Helper()
	var out []byte
	var err error
	deadline := time.Now().Add(time.Minute)
	for {
		out, err = exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "cards,cardtransactions,webhookendpoints",
			"-n", "default", "-o", "custom-columns=KIND:.kind,NAME:.metadata.name,READY:.status.conditions[?(@.type=='Ready')].status").CombinedOutput()
		if err == nil && readyEndpoints(string(out)) == 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("kubectl get: %v\n%s", err, out)
	}
	for _, want := range []string{"upay-main-uc10001", "upay-main-tx-77-1", "upay-main", "tevau-main", "bananatech-main", "prepaidify-main", "alchemypay-orders", "acme-issuing"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubectl get does not show sample %s:\n%s", want, out)
		}
	}
	if got := readyEndpoints(string(out)); got != 6 {
		t.Errorf("want all 6 sample endpoints Ready, got %d:\n%s", got, out)
	}
}

// checkSimulatedCallback: a provider callback, signed by the simulator with the endpoint's Secret, becomes a
// card state change.
func checkSimulatedCallback(t *testing.T, bin, kubectl, kubeconfig, receiverAddr string) {
	t.Helper()
	sim := exec.Command(bin, "simulate", "--kubeconfig", kubeconfig, "--url", "http://"+receiverAddr,
		"--endpoint", "default/upay-main", "--example", "upay-card-status")
	if out, err := sim.CombinedOutput(); err != nil || !strings.Contains(string(out), "HTTP 200") || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("cardplane simulate: %v\n%s", err, out)
	}
	out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "card", "upay-main-uc10001", "-n", "default",
		"-o", "jsonpath={.status.phase} {.status.providerStatus} {.status.lastEvent.type}").CombinedOutput()
	if err != nil || string(out) != "Frozen 3 CSC_STATUS_CHANGE" {
		t.Errorf("card after the simulated CSC_STATUS_CHANGE: %q (%v), want \"Frozen 3 CSC_STATUS_CHANGE\"", out, err)
	}
}

// checkGovernedFromFirstSight: a card created by a callback carries the sample endpoint's cardLabels, so the
// sample rule set governs it: a casino purchase is declined, asked through the AuthorizationReview API and by
// UPay's own real-time authorization request.
func checkGovernedFromFirstSight(t *testing.T, bin, kubeconfig, receiverAddr, reviewAddr, tokenFile string) {
	t.Helper()
	now := time.Now().UnixMilli()
	send := func(payload string) string {
		file := filepath.Join(t.TempDir(), "payload.json")
		if err := os.WriteFile(file, []byte(payload), 0o600); err != nil {
			t.Fatal(err)
		}
		out, _ := exec.Command(bin, "simulate", "--kubeconfig", kubeconfig, "--url", "http://"+receiverAddr,
			"--endpoint", "default/upay-main", "--file", file).CombinedOutput()
		return string(out)
	}
	consume := fmt.Sprintf(`{"event":"CC_CONSUME","orderNo":"ON-NEW-1","timestamp":%d,"detail":{"cardId":"UC20002","type":2,"status":1,"amount":"12.00","direction":2,"currency":"USD","transactionAt":%d,"transactionId":"TX-NEW-1","merchantMcc":"5814","merchantCountry":"US"}}`, now, now)
	if out := send(consume); !strings.Contains(out, "HTTP 200") {
		t.Fatalf("a CC_CONSUME for a new card: %s", out)
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"apiVersion":"cards.cardplane.io/v1alpha1","kind":"AuthorizationReview","request":{"uid":"u-1","card":{"namespace":"default","name":"upay-main-uc20002"},"amount":"20.00","currency":"USD","merchant":{"name":"Casino","mcc":"7995","country":"US"}}}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+reviewAddr+"/v1alpha1/authorizationreviews", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(answer), `"allowed":false`) || !strings.Contains(string(answer), `"reason":"BLOCKED_MCC"`) {
		t.Errorf("a casino purchase on the callback-created card, reviewed: %d %s; want declined BLOCKED_MCC", resp.StatusCode, answer)
	}
	auth := fmt.Sprintf(`{"event":"CC_AUTHORIZATION","orderNo":"ON-NEW-2","timestamp":%d,"detail":{"cardId":"UC20003","amount":"20.00","currency":"USD","merchantMcc":"7995","transactionId":"TX-NEW-2","authorizationId":"AU-NEW-2"}}`, now)
	if out := send(auth); !strings.Contains(out, "HTTP 200") || !strings.Contains(out, "decline") {
		t.Errorf("UPay's authorization request for a casino purchase on a card first seen now: %s; want decline", out)
	}
}

// checkDemoDestination waits for the demo destination to log a verified delivery of the card.
func checkDemoDestination(t *testing.T, logPath string) {
	t.Helper()
	var log []byte
	waitUntil := time.Now().Add(30 * time.Second)
	for time.Now().Before(waitUntil) {
		log, _ = os.ReadFile(logPath)
		if strings.Contains(string(log), "verified card.updated upay-main-uc10001") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(string(log), "verified card.updated upay-main-uc10001") || strings.Contains(string(log), "REJECTED") {
		t.Errorf("the demo destination did not log a verified delivery of the card:\n%s", log)
	}
}

// stopDev presses Ctrl-C and checks that cardplane dev and its children are gone.
func stopDev(t *testing.T, cmd *exec.Cmd, children []int) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("cardplane dev exited with %v after Ctrl-C; stderr:\n%s", err, cmd.Stderr)
		}
	case <-time.After(time.Minute):
		t.Fatal("cardplane dev did not stop within a minute of Ctrl-C")
	}
	for _, pid := range children {
		if alive(pid) {
			t.Errorf("process %d (a child of cardplane dev) is still running after Ctrl-C", pid)
		}
	}
}

func readyEndpoints(table string) int {
	n := 0
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "WebhookEndpoint") && strings.HasSuffix(strings.TrimSpace(line), "True") {
			n++
		}
	}
	return n
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// childPIDs lists the processes whose parent is pid, from /proc.
func childPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and may contain spaces.
		fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			pids = append(pids, p)
		}
	}
	return pids
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// lockedBuffer collects a child's stderr for failure messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// checkSampleSinks: every sample CardEventSink is Ready and, when the demo sinks run, each of them (NATS,
// the Kafka-protocol broker, the CloudEvents receiver, and the demo destination for the webhook sink) has
// received an event of the demo's card, which checkSimulatedCallback froze (the NATS sink takes frozen cards
// only).
func checkSampleSinks(t *testing.T, kubectl, kubeconfig, dir string, delivered bool) {
	t.Helper()
	const card = "upay-main-uc10001"
	sinks := []string{"growth-webhook", "growth-cloudevents", "growth-kafka", "growth-frozen-cards"}
	logs := map[string]string{"sinks-nats.log": "nats cards.card.updated", "sinks-kafka.log": "type io.cardplane.card.updated",
		"sinks-cloudevents.log": "cloudevents io.cardplane.card.updated"}
	var out []byte
	var missing []string
	deadline := time.Now().Add(time.Minute)
	for {
		missing = nil
		var err error
		out, err = exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "cardeventsinks", "-n", "default", "--no-headers",
			"-o", "custom-columns=NAME:.metadata.name,READY:.status.conditions[?(@.type=='Ready')].status,DELIVERED:.status.delivered").CombinedOutput()
		if err != nil {
			missing = append(missing, "kubectl get cardeventsinks: "+err.Error())
		}
		rows := map[string][]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(line); len(f) == 3 {
				rows[f[0]] = f[1:]
			}
		}
		for _, name := range sinks {
			switch row := rows[name]; {
			case row == nil || row[0] != "True":
				missing = append(missing, name+" Ready")
			case delivered && (row[1] == "<none>" || row[1] == "0"):
				missing = append(missing, name+" delivered")
			}
		}
		if delivered {
			for file, prefix := range logs {
				data, _ := os.ReadFile(filepath.Join(dir, file))
				found := false
				for _, line := range strings.Split(string(data), "\n") {
					found = found || strings.Contains(line, prefix) && strings.Contains(line, "name "+card+" ")
				}
				if !found {
					missing = append(missing, file+" has no "+prefix+" of "+card)
				}
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(missing) > 0 {
		var logText strings.Builder
		for file := range logs {
			data, _ := os.ReadFile(filepath.Join(dir, file))
			fmt.Fprintf(&logText, "%s:\n%s\n", file, data)
		}
		t.Errorf("sample sinks: missing %v\nkubectl get cardeventsinks:\n%s\n%s", missing, out, logText.String())
	}
}
