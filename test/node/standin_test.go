package node_test

// The stand-in node: what a node's kubelet and kube-proxy would do, done by this test process with real parts
// where they matter. The cluster's own kube-controller-manager and kube-scheduler run beside the API server
// (Deployments, ReplicaSets, EndpointSlices, the disruption controller, kube-root-ca.crt, node lifecycle), and
// the scheduler binds pods to this node. The node registers itself and heartbeats, pulls each pod's image from
// a registry, and runs its container with runc (the OCI runtime under containerd) in a network namespace of
// its own, with the pod's user, read-only root, capabilities, volumes (Secrets, emptyDirs, the projected
// ServiceAccount token) and resource limits. It probes the pods and writes their status, forwards the pods'
// `kubernetes` Service address to the API server, and balances a Service over its ready EndpointSlice
// endpoints. Anything in a pod spec it does not implement fails the test instead of being ignored.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	nodeName   = "standin-node"
	bridgeName = "cpnode0"
	bridgeCIDR = "10.89.0.1/24"
	podSubnet  = "10.89.0."
	netnsPref  = "cpnode-"
)

// standinNode runs the pods of the Deployments in its namespace.
type standinNode struct {
	t        *testing.T
	c        client.Client
	ociimage string // hack/tools/ociimage, for pulling images
	dir      string
	apiPort  string // the API server's port on the host's loopback
	caPEM    []byte

	mu     sync.Mutex
	pods   map[string]*podRun // by namespace/name
	images map[string]string  // image reference -> directory with rootfs/ and config.json
	nextIP int
	errs   []string
	// OnFail, when set, is called after each failure (to stop waiting for what will not come).
	OnFail func()

	stopLoop context.CancelFunc
	loopDone chan struct{}
}

// podRun is one running pod: one container under runc.
type podRun struct {
	pod      *corev1.Pod // as admitted
	ip       string
	netns    string
	id       string // runc container ID
	bundle   string
	logPath  string
	apiLn    net.Listener
	exited   chan struct{}
	exitCode int
	ready    atomic.Bool
	stop     context.CancelFunc
	ports    map[string]int32
}

func newStandinNode(t *testing.T, c client.Client, apiHostPort string, caPEM []byte, ociimage string) *standinNode {
	t.Helper()
	_, port, err := net.SplitHostPort(apiHostPort)
	if err != nil {
		t.Fatal(err)
	}
	n := &standinNode{t: t, c: c, ociimage: ociimage, dir: t.TempDir(), apiPort: port, caPEM: caPEM,
		pods: map[string]*podRun{}, images: map[string]string{}, nextIP: 10}
	cleanupNetwork()
	for _, args := range [][]string{
		{"link", "add", bridgeName, "type", "bridge"},
		{"addr", "add", bridgeCIDR, "dev", bridgeName},
		{"link", "set", bridgeName, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(n.shutdown)
	return n
}

func (n *standinNode) fail(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	n.t.Log("stand-in node: " + msg)
	n.errs = append(n.errs, msg)
	if n.OnFail != nil {
		go n.OnFail()
	}
}

// Errors are what the stand-in could not do (unsupported pod features, failed starts).
func (n *standinNode) Errors() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.errs)
}

// Start runs the node until the test ends: it registers the Node, keeps its heartbeat, and runs the pods the
// scheduler binds to it.
func (n *standinNode) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	n.stopLoop, n.loopDone = cancel, make(chan struct{})
	go func() {
		defer close(n.loopDone)
		n.run(ctx)
	}()
}

func (n *standinNode) run(ctx context.Context) {
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	var lastHeartbeat time.Time
	for {
		if time.Since(lastHeartbeat) > 5*time.Second {
			if err := n.heartbeat(ctx); err != nil && ctx.Err() == nil {
				n.fail("node heartbeat: %v", err)
			}
			lastHeartbeat = time.Now()
		}
		n.syncPods(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// heartbeat registers the Node and renews its Ready condition and Lease, as the kubelet does, so that the
// scheduler places pods on it and the node lifecycle controller does not evict them.
func (n *standinNode) heartbeat(ctx context.Context) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{
		"kubernetes.io/hostname": nodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH}}}
	if err := n.c.Create(ctx, node); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if err := n.c.Get(ctx, client.ObjectKey{Name: nodeName}, node); err != nil {
			return err
		}
		resources := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"),
			corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")}
		now := metav1.Now()
		node.Status.Capacity, node.Status.Allocatable = resources, resources
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: strings.Split(bridgeCIDR, "/")[0]},
			{Type: corev1.NodeHostName, Address: nodeName}}
		node.Status.NodeInfo = corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: runtime.GOARCH,
			KubeletVersion: "v1.37.2", ContainerRuntimeVersion: "runc://stand-in"}
		ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "stand-in node is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready.LastTransitionTime = c.LastTransitionTime
			}
		}
		node.Status.Conditions = []corev1.NodeCondition{ready}
		return n.c.Status().Update(ctx, node)
	})
	if err != nil {
		return err
	}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-node-lease", Name: nodeName}}
	renew := func() {
		lease.Spec.HolderIdentity = ptr(nodeName)
		lease.Spec.LeaseDurationSeconds = ptr(int32(40))
		lease.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
	}
	if err := n.c.Get(ctx, client.ObjectKeyFromObject(lease), lease); apierrors.IsNotFound(err) {
		renew()
		return n.c.Create(ctx, lease)
	} else if err != nil {
		return err
	}
	renew()
	return n.c.Update(ctx, lease)
}

// syncPods is the kubelet: start the node's new pods, stop the ones being deleted, report status.
func (n *standinNode) syncPods(ctx context.Context) {
	var pods corev1.PodList
	if err := n.c.List(ctx, &pods); err != nil {
		return
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName != nodeName {
			continue
		}
		key := p.Namespace + "/" + p.Name
		n.mu.Lock()
		run := n.pods[key]
		n.mu.Unlock()
		switch {
		case p.DeletionTimestamp != nil:
			if run != nil {
				n.stopPod(run, p.Spec.TerminationGracePeriodSeconds)
				n.mu.Lock()
				delete(n.pods, key)
				n.mu.Unlock()
			}
			_ = n.c.Delete(ctx, p, client.GracePeriodSeconds(0))
		case run == nil:
			run, err := n.startPod(ctx, p)
			if errors.Is(err, errWaiting) {
				n.t.Logf("stand-in node: pod %s waits: %v", key, err)
				continue
			}
			if err != nil && ctx.Err() != nil {
				return // the test is over
			}
			if err != nil {
				n.fail("pod %s: %v", key, err)
				p.Status.Phase = corev1.PodFailed
				p.Status.Message = err.Error()
				_ = n.c.Status().Update(ctx, p)
				_ = n.c.Delete(ctx, p, client.GracePeriodSeconds(0))
				continue
			}
			n.mu.Lock()
			n.pods[key] = run
			n.mu.Unlock()
		}
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// startPod pulls the image, sets up the network namespace and volumes, and starts the container under runc.
func (n *standinNode) startPod(ctx context.Context, pod *corev1.Pod) (*podRun, error) {
	if err := unsupported(pod); err != nil {
		return nil, err
	}
	c := pod.Spec.Containers[0]
	podDir := filepath.Join(n.dir, "pods", pod.Name)
	// Volumes first: a Secret or ConfigMap that is not there yet keeps the pod waiting, as on a node.
	mounts, err := n.volumes(ctx, pod, podDir)
	if err != nil {
		return nil, err
	}
	image, err := n.pull(c.Image)
	if err != nil {
		return nil, fmt.Errorf("ErrImagePull %s: %w", c.Image, err)
	}
	n.mu.Lock()
	ip := podSubnet + strconv.Itoa(n.nextIP)
	n.nextIP++
	n.mu.Unlock()
	run := &podRun{pod: pod, ip: ip, netns: netnsPref + pod.Name, id: pod.Name, exited: make(chan struct{}), ports: map[string]int32{}}
	for _, p := range c.Ports {
		run.ports[p.Name] = p.ContainerPort
	}
	run.bundle = filepath.Join(podDir, "bundle")
	run.logPath = filepath.Join(podDir, "container.log")
	if err := os.MkdirAll(run.bundle, 0o755); err != nil {
		return nil, err
	}
	// Each container gets its own copy of the image's file system, as an overlay's upper layer would give.
	if out, err := exec.Command("cp", "-a", filepath.Join(image, "rootfs"), filepath.Join(run.bundle, "rootfs")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copying rootfs: %w: %s", err, out)
	}
	if err := n.setupNetwork(run); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	spec, err := n.runtimeSpec(pod, image, run, mounts, podDir)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(run.bundle, "config.json"), spec, 0o644); err != nil {
		return nil, err
	}
	logFile, err := os.Create(run.logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("runc", "--root", n.runcRoot(), "run", "--bundle", run.bundle, run.id)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("runc run: %w", err)
	}
	go func() {
		err := cmd.Wait()
		logFile.Close()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			run.exitCode = exit.ExitCode()
		}
		close(run.exited)
	}()
	probeCtx, cancel := context.WithCancel(context.Background())
	run.stop = cancel
	go n.kubeletLoop(probeCtx, run)
	n.t.Logf("stand-in node: pod %s/%s started with runc, IP %s, image %s", pod.Namespace, pod.Name, ip, c.Image)
	return run, nil
}

func (n *standinNode) runcRoot() string { return filepath.Join(n.dir, "runc") }

// pull fetches and extracts an image once, as a node's image store would.
func (n *standinNode) pull(ref string) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if dir, ok := n.images[ref]; ok {
		return dir, nil
	}
	dir := filepath.Join(n.dir, "images", strconv.Itoa(len(n.images)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command(n.ociimage, "unpack", "--image", ref, "--platform", "linux/"+runtime.GOARCH,
		"--rootfs", filepath.Join(dir, "rootfs"), "--config", filepath.Join(dir, "config.json"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w: %s", err, out)
	}
	n.images[ref] = dir
	return dir, nil
}

// kubeletLoop probes the container as the pod spec says and writes the pod's status.
func (n *standinNode) kubeletLoop(ctx context.Context, run *podRun) {
	c := run.pod.Spec.Containers[0]
	started := time.Now()
	n.writeStatus(ctx, run, false)
	rp := c.ReadinessProbe
	period := time.Second
	if rp != nil && rp.PeriodSeconds > 0 {
		period = time.Duration(rp.PeriodSeconds) * time.Second
	}
	lastReady := false
	livenessFailures := 0
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	nextProbe := started
	if rp != nil {
		nextProbe = started.Add(time.Duration(rp.InitialDelaySeconds) * time.Second)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-run.exited:
			run.ready.Store(false)
			if ctx.Err() != nil { // stopped by stopPod
				return
			}
			n.fail("pod %s: container exited with code %d; log:\n%s", run.pod.Name, run.exitCode, tail(run.logPath))
			n.writeStatus(context.Background(), run, false)
			return
		case <-tick.C:
		}
		if time.Now().Before(nextProbe) {
			continue
		}
		nextProbe = time.Now().Add(period)
		ready := rp == nil || n.probe(run, rp)
		if lp := c.LivenessProbe; lp != nil && time.Since(started) > time.Duration(lp.InitialDelaySeconds)*time.Second {
			if n.probe(run, lp) {
				livenessFailures = 0
			} else if livenessFailures++; livenessFailures >= int(max(lp.FailureThreshold, 3)) {
				n.fail("pod %s: liveness probe failed %d times", run.pod.Name, livenessFailures)
			}
		}
		if ready != lastReady {
			lastReady = ready
			run.ready.Store(ready)
			n.writeStatus(ctx, run, ready)
		}
	}
}

func (n *standinNode) probe(run *podRun, p *corev1.Probe) bool {
	if p.HTTPGet == nil {
		n.fail("pod %s: only httpGet probes are supported by the stand-in", run.pod.Name)
		return false
	}
	port := p.HTTPGet.Port.IntVal
	if p.HTTPGet.Port.Type == intstr.String {
		port = run.ports[p.HTTPGet.Port.StrVal]
	}
	timeout := time.Second
	if p.TimeoutSeconds > 0 {
		timeout = time.Duration(p.TimeoutSeconds) * time.Second
	}
	scheme := "http"
	if p.HTTPGet.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	hc := http.Client{Timeout: timeout}
	resp, err := hc.Get(fmt.Sprintf("%s://%s:%d%s", scheme, run.ip, port, p.HTTPGet.Path))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

func (n *standinNode) writeStatus(ctx context.Context, run *podRun, ready bool) {
	cond := func(t corev1.PodConditionType, ok bool) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		return corev1.PodCondition{Type: t, Status: s, LastTransitionTime: metav1.Now()}
	}
	cs := corev1.ContainerStatus{Name: run.pod.Spec.Containers[0].Name, Image: run.pod.Spec.Containers[0].Image, Ready: ready,
		ContainerID: "runc://" + run.id}
	phase := corev1.PodRunning
	select {
	case <-run.exited:
		phase = corev1.PodFailed
		cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: int32(run.exitCode), Reason: "Error"}
	default:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.Now()}
		cs.Started = ptr(true)
	}
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		p := &corev1.Pod{}
		if err := n.c.Get(ctx, client.ObjectKeyFromObject(run.pod), p); err != nil {
			return err
		}
		p.Status.Phase = phase
		p.Status.PodIP = run.ip
		p.Status.PodIPs = []corev1.PodIP{{IP: run.ip}}
		p.Status.HostIP = strings.Split(bridgeCIDR, "/")[0]
		p.Status.StartTime = ptr(metav1.Now())
		p.Status.Conditions = []corev1.PodCondition{cond(corev1.PodScheduled, true), cond(corev1.PodInitialized, true),
			cond(corev1.ContainersReady, ready), cond(corev1.PodReady, ready)}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
		return n.c.Status().Update(ctx, p)
	})
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		n.fail("pod %s status: %v", run.pod.Name, err)
	}
}

func ptr[T any](v T) *T { return &v }

// stopPod is the kubelet's graceful termination: SIGTERM, the grace period, then SIGKILL.
func (n *standinNode) stopPod(run *podRun, grace *int64) {
	wait := 30 * time.Second
	if grace != nil {
		wait = time.Duration(*grace) * time.Second
	}
	run.stop() // an exit from here on is expected
	_ = exec.Command("runc", "--root", n.runcRoot(), "kill", run.id, "TERM").Run()
	select {
	case <-run.exited:
	case <-time.After(wait):
		_ = exec.Command("runc", "--root", n.runcRoot(), "kill", run.id, "KILL").Run()
		<-run.exited
	}
	if run.exitCode != 0 {
		n.t.Logf("stand-in node: pod %s stopped with exit code %d; its last lines:\n%s", run.pod.Name, run.exitCode, tail(run.logPath))
	} else {
		n.t.Logf("stand-in node: pod %s stopped (exit code 0)", run.pod.Name)
	}
	_ = exec.Command("runc", "--root", n.runcRoot(), "delete", "--force", run.id).Run()
	if run.apiLn != nil {
		run.apiLn.Close()
	}
	_ = exec.Command("ip", "link", "del", run.hostVeth()).Run()
	_ = exec.Command("ip", "netns", "del", run.netns).Run()
}

func (n *standinNode) shutdown() {
	if n.stopLoop != nil {
		n.stopLoop()
		<-n.loopDone
	}
	n.mu.Lock()
	runs := slices.Collect(maps.Values(n.pods))
	n.pods = map[string]*podRun{}
	n.mu.Unlock()
	for _, run := range runs {
		n.stopPod(run, ptr(int64(5)))
	}
	cleanupNetwork()
}

// Run returns the running pod by name, for inspection.
func (n *standinNode) Pod(name string) *podRun {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range n.pods {
		if r.pod.Name == name {
			return r
		}
	}
	return nil
}

// containerPID is the host PID of the container's first process.
func (n *standinNode) containerPID(run *podRun) (int, error) {
	out, err := exec.Command("runc", "--root", n.runcRoot(), "state", run.id).Output()
	if err != nil {
		return 0, err
	}
	var st struct{ Pid int }
	return st.Pid, json.Unmarshal(out, &st)
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}
