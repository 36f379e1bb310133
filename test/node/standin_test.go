package node_test

// The stand-in node: what a cluster's controller manager, kubelet and kube-proxy would do for the cardplane
// Deployment, done by this test process with real parts where they matter. It creates the Deployment's pods
// through the API server (so the ServiceAccount and PodSecurity admission plugins admit and mutate them),
// pulls the pod's image from a registry, and runs each pod's container with runc (the OCI runtime under
// containerd) in a network namespace of its own, with the pod's user, read-only root, capabilities, volumes
// (Secrets, emptyDirs, the projected ServiceAccount token) and resource limits. It probes the pods and writes
// their status, publishes kube-root-ca.crt, forwards the pods' `kubernetes` Service address to the API server,
// and balances a Service over its ready pods. Anything in a pod spec it does not implement fails the test
// instead of being ignored.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

	"golang.org/x/sys/unix"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
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

// cleanupNetwork removes what an earlier, killed run may have left.
func cleanupNetwork() {
	_ = exec.Command("ip", "link", "del", bridgeName).Run()
	// Host ends of pod veths: a namespace lives on while a socket in it is open, and its veth with it.
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(links), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], "cpv") {
			_ = exec.Command("ip", "link", "del", strings.Split(strings.TrimSuffix(f[1], ":"), "@")[0]).Run()
		}
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], netnsPref) {
			_ = exec.Command("ip", "netns", "del", f[0]).Run()
		}
	}
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

// Start reconciles until the test ends: Deployments in namespace to pods, pods to containers, status back.
func (n *standinNode) Start(namespace string) {
	ctx, cancel := context.WithCancel(context.Background())
	n.stopLoop, n.loopDone = cancel, make(chan struct{})
	go func() {
		defer close(n.loopDone)
		n.run(ctx, namespace)
	}()
}

func (n *standinNode) run(ctx context.Context, namespace string) {
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		n.publishRootCA(ctx)
		n.syncDeployments(ctx, namespace)
		n.syncPods(ctx, namespace)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// publishRootCA does what kube-controller-manager's root-ca-cert-publisher does: the projected
// ServiceAccount volume reads ca.crt from this ConfigMap.
func (n *standinNode) publishRootCA(ctx context.Context) {
	var nss corev1.NamespaceList
	if err := n.c.List(ctx, &nss); err != nil {
		return
	}
	for _, ns := range nss.Items {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "kube-root-ca.crt"},
			Data: map[string]string{"ca.crt": string(n.caPEM)}}
		if err := n.c.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) && ctx.Err() == nil {
			n.fail("publishing kube-root-ca.crt in %s: %v", ns.Name, err)
		}
	}
}

// syncDeployments is the Deployment and ReplicaSet controllers, without rollouts: each Deployment gets
// spec.replicas pods from its template, and a status `kubectl rollout status` reads.
func (n *standinNode) syncDeployments(ctx context.Context, namespace string) {
	var deps appsv1.DeploymentList
	if err := n.c.List(ctx, &deps, client.InNamespace(namespace)); err != nil {
		return
	}
	for i := range deps.Items {
		d := &deps.Items[i]
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			n.fail("deployment %s selector: %v", d.Name, err)
			continue
		}
		var pods corev1.PodList
		if err := n.c.List(ctx, &pods, client.InNamespace(d.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
			continue
		}
		live, ready := 0, 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			live++
			if podReady(&p) {
				ready++
			}
		}
		want := 1
		if d.Spec.Replicas != nil {
			want = int(*d.Spec.Replicas)
		}
		for ; live < want; live++ {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: d.Namespace, GenerateName: d.Name + "-",
					Labels: maps.Clone(d.Spec.Template.Labels), Annotations: maps.Clone(d.Spec.Template.Annotations)},
				Spec: *d.Spec.Template.Spec.DeepCopy(),
			}
			pod.Spec.NodeName = nodeName
			if err := n.c.Create(ctx, pod); err != nil {
				if ctx.Err() == nil {
					n.fail("FailedCreate: pod for deployment %s: %v", d.Name, err)
				}
				break
			}
		}
		status := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: int32(live), UpdatedReplicas: int32(live),
			ReadyReplicas: int32(ready), AvailableReplicas: int32(ready), UnavailableReplicas: int32(max(0, want-ready))}
		if d.Status.ObservedGeneration != status.ObservedGeneration || d.Status.Replicas != status.Replicas ||
			d.Status.ReadyReplicas != status.ReadyReplicas || d.Status.AvailableReplicas != status.AvailableReplicas {
			d.Status = status
			_ = n.c.Status().Update(ctx, d)
		}
	}
}

// syncPods is the kubelet: start the node's new pods, stop the ones being deleted, report status.
func (n *standinNode) syncPods(ctx context.Context, namespace string) {
	var pods corev1.PodList
	if err := n.c.List(ctx, &pods, client.InNamespace(namespace)); err != nil {
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
		return nil, fmt.Errorf("copying rootfs: %v: %s", err, out)
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

// unsupported names what the stand-in cannot do for this pod, so that nothing in the spec is silently ignored.
func unsupported(pod *corev1.Pod) error {
	s := pod.Spec
	switch {
	case len(s.Containers) != 1:
		return fmt.Errorf("stand-in runs one container per pod, the pod has %d", len(s.Containers))
	case len(s.InitContainers) > 0 || len(s.EphemeralContainers) > 0:
		return errors.New("stand-in runs no init or ephemeral containers")
	case s.HostNetwork || s.HostPID || s.HostIPC:
		return errors.New("stand-in runs no host-namespace pods")
	}
	c := s.Containers[0]
	if len(c.Command) > 0 && len(c.Command[0]) == 0 {
		return errors.New("empty command")
	}
	for _, e := range c.EnvFrom {
		return fmt.Errorf("envFrom %v is not supported by the stand-in", e)
	}
	return nil
}

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
		return "", fmt.Errorf("%v: %s", err, out)
	}
	n.images[ref] = dir
	return dir, nil
}

// setupNetwork gives the pod a network namespace on the node's bridge, and inside it the `kubernetes`
// Service address (127.0.0.1:443, forwarded to the API server, as kube-proxy would do for the ClusterIP).
func (n *standinNode) setupNetwork(run *podRun) error {
	host := run.hostVeth()
	for _, args := range [][]string{
		{"netns", "add", run.netns},
		{"link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", run.netns},
		{"link", "set", host, "master", bridgeName},
		{"link", "set", host, "up"},
		{"-n", run.netns, "addr", "add", run.ip + "/24", "dev", "eth0"},
		{"-n", run.netns, "link", "set", "eth0", "up"},
		{"-n", run.netns, "link", "set", "lo", "up"},
		{"-n", run.netns, "route", "add", "default", "via", strings.Split(bridgeCIDR, "/")[0]},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ln, err := listenInNetns("/var/run/netns/"+run.netns, "127.0.0.1:443")
	if err != nil {
		return fmt.Errorf("kubernetes Service address in the pod: %w", err)
	}
	run.apiLn = ln
	go forward(ln, net.JoinHostPort("127.0.0.1", n.apiPort))
	return nil
}

func (r *podRun) hostVeth() string { return "cpv" + strings.TrimPrefix(r.ip, podSubnet) }

// listenInNetns opens a listening socket inside a network namespace. The socket stays in that namespace;
// the thread that entered it is never handed back to the Go scheduler (it ends with its goroutine).
func listenInNetns(nsPath, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(nsPath)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		ln, err := net.Listen("tcp", addr)
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

// forward copies every connection accepted on ln to target, both ways.
func forward(ln net.Listener, target string) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go pipe(conn, target)
	}
}

// volumes writes the pod's volumes to the node's disk as the kubelet's volume plugins would.
func (n *standinNode) volumes(ctx context.Context, pod *corev1.Pod, podDir string) (map[string]string, error) {
	fsGroup := -1
	if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		fsGroup = int(*sc.FSGroup)
	}
	dirs := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(podDir, "volumes", v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		files := map[string][]byte{}
		mode := os.FileMode(0o644)
		switch {
		case v.Secret != nil:
			s := &corev1.Secret{}
			if err := n.c.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: v.Secret.SecretName}, s); err != nil {
				return nil, waiting(fmt.Errorf("secret volume %s: %w", v.Name, err))
			}
			if v.Secret.DefaultMode != nil {
				mode = os.FileMode(*v.Secret.DefaultMode)
			}
			if err := project(files, s.Data, v.Secret.Items); err != nil {
				return nil, fmt.Errorf("secret volume %s: %w", v.Name, err)
			}
		case v.EmptyDir != nil:
			if err := os.Chmod(dir, 0o777); err != nil { // as the kubelet makes emptyDirs
				return nil, err
			}
		case v.Projected != nil:
			if v.Projected.DefaultMode != nil {
				mode = os.FileMode(*v.Projected.DefaultMode)
			}
			for _, src := range v.Projected.Sources {
				switch {
				case src.ServiceAccountToken != nil:
					token, err := n.token(ctx, pod, src.ServiceAccountToken)
					if err != nil {
						return nil, err
					}
					files[src.ServiceAccountToken.Path] = []byte(token)
				case src.ConfigMap != nil:
					cm := &corev1.ConfigMap{}
					if err := n.c.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: src.ConfigMap.Name}, cm); err != nil {
						return nil, waiting(fmt.Errorf("projected configMap %s: %w", src.ConfigMap.Name, err))
					}
					data := map[string][]byte{}
					for k, v := range cm.Data {
						data[k] = []byte(v)
					}
					if err := project(files, data, src.ConfigMap.Items); err != nil {
						return nil, err
					}
				case src.DownwardAPI != nil:
					for _, item := range src.DownwardAPI.Items {
						if item.FieldRef == nil || item.FieldRef.FieldPath != "metadata.namespace" {
							return nil, fmt.Errorf("projected downwardAPI item %s is not supported by the stand-in", item.Path)
						}
						files[item.Path] = []byte(pod.Namespace)
					}
				default:
					return nil, fmt.Errorf("projected source %+v is not supported by the stand-in", src)
				}
			}
		default:
			return nil, fmt.Errorf("volume %s: only secret, emptyDir and projected volumes are supported by the stand-in", v.Name)
		}
		for name, data := range files {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, data, mode); err != nil {
				return nil, err
			}
			if fsGroup >= 0 {
				if err := os.Chown(path, 0, fsGroup); err != nil {
					return nil, err
				}
			}
		}
		if fsGroup >= 0 {
			if err := os.Chown(dir, 0, fsGroup); err != nil {
				return nil, err
			}
		}
		dirs[v.Name] = dir
	}
	return dirs, nil
}

// errWaiting marks what a node waits out (FailedMount of a Secret not yet created) instead of failing the pod.
var errWaiting = errors.New("ContainerCreating")

func waiting(err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: %w", errWaiting, err)
	}
	return err
}

func project(files map[string][]byte, data map[string][]byte, items []corev1.KeyToPath) error {
	if len(items) == 0 {
		maps.Copy(files, data)
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("key %s not found", it.Key)
		}
		files[it.Path] = v
	}
	return nil
}

// token is the kubelet's TokenRequest for a projected ServiceAccount token bound to the pod.
func (n *standinNode) token(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection) (string, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Spec.ServiceAccountName}}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		tr.Spec.Audiences = []string{src.Audience}
	}
	if err := n.c.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", fmt.Errorf("TokenRequest for serviceaccount %s: %w", sa.Name, err)
	}
	return tr.Status.Token, nil
}

// runtimeSpec is the OCI runtime spec (runc's config.json) of the pod's container.
func (n *standinNode) runtimeSpec(pod *corev1.Pod, imageDir string, run *podRun, volumeDirs map[string]string, podDir string) ([]byte, error) {
	c := pod.Spec.Containers[0]
	var imageCfg struct {
		Config struct {
			User       string
			Env        []string
			Entrypoint []string
			Cmd        []string
			WorkingDir string
		} `json:"config"`
	}
	raw, err := os.ReadFile(filepath.Join(imageDir, "config.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &imageCfg); err != nil {
		return nil, err
	}
	img := imageCfg.Config
	// Kubernetes: command replaces the entrypoint (and drops the image's cmd), args replace the cmd.
	args := append(slices.Clone(img.Entrypoint), img.Cmd...)
	if len(c.Command) > 0 {
		args = append(slices.Clone(c.Command), c.Args...)
	} else if len(c.Args) > 0 {
		args = append(slices.Clone(img.Entrypoint), c.Args...)
	}

	uid, gid := -1, -1
	if u, g, ok := strings.Cut(img.User, ":"); img.User != "" {
		if uid, err = strconv.Atoi(u); err != nil {
			return nil, fmt.Errorf("image user %q is not numeric", img.User)
		}
		gid = uid
		if ok {
			if gid, err = strconv.Atoi(g); err != nil {
				return nil, fmt.Errorf("image group %q is not numeric", img.User)
			}
		}
	}
	psc, csc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	pick := func(container, podLevel *int64, current int) int {
		if container != nil {
			return int(*container)
		}
		if podLevel != nil {
			return int(*podLevel)
		}
		return current
	}
	uid = pick(csc.RunAsUser, psc.RunAsUser, max(uid, 0))
	gid = pick(csc.RunAsGroup, psc.RunAsGroup, max(gid, 0))
	nonRoot := (csc.RunAsNonRoot != nil && *csc.RunAsNonRoot) || (csc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	if nonRoot && uid == 0 {
		return nil, errors.New("CreateContainerConfigError: container has runAsNonRoot and image will run as root")
	}
	var groups []int
	if psc.FSGroup != nil {
		groups = append(groups, int(*psc.FSGroup))
	}
	for _, g := range psc.SupplementalGroups {
		groups = append(groups, int(g))
	}

	env := append([]string{"HOSTNAME=" + pod.Name}, img.Env...)
	env = append(env, "KUBERNETES_SERVICE_HOST=127.0.0.1", "KUBERNETES_SERVICE_PORT=443", "KUBERNETES_SERVICE_PORT_HTTPS=443")
	for _, e := range c.Env {
		value := e.Value
		if e.ValueFrom != nil {
			f := e.ValueFrom.FieldRef
			switch {
			case f != nil && f.FieldPath == "metadata.name":
				value = pod.Name
			case f != nil && f.FieldPath == "metadata.namespace":
				value = pod.Namespace
			case f != nil && f.FieldPath == "status.podIP":
				value = run.ip
			case f != nil && f.FieldPath == "spec.nodeName":
				value = nodeName
			default:
				return nil, fmt.Errorf("env %s: valueFrom %+v is not supported by the stand-in", e.Name, e.ValueFrom)
			}
		}
		env = append(env, e.Name+"="+value)
	}

	capabilities := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
		"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"} // containerd's defaults
	if csc.Capabilities != nil {
		for _, d := range csc.Capabilities.Drop {
			if d == "ALL" {
				capabilities = nil
				break
			}
			capabilities = slices.DeleteFunc(capabilities, func(c string) bool { return c == "CAP_"+string(d) })
		}
		for _, a := range csc.Capabilities.Add {
			capabilities = append(capabilities, "CAP_"+string(a))
		}
	}
	if uid != 0 { // as containerd does for non-root users: no effective or permitted capabilities
		capabilities = nil
	}

	hosts := filepath.Join(podDir, "hosts")
	if err := os.WriteFile(hosts, fmt.Appendf(nil, "127.0.0.1\tlocalhost\n%s\t%s\n", run.ip, pod.Name), 0o644); err != nil {
		return nil, err
	}
	mounts := []map[string]any{
		{"destination": "/proc", "type": "proc", "source": "proc"},
		{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": []string{"nosuid", "noexec", "nodev"}},
		{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": []string{"nosuid", "noexec", "nodev", "ro"}},
		{"destination": "/etc/hosts", "type": "bind", "source": hosts, "options": []string{"rbind", "ro"}},
	}
	for _, vm := range c.VolumeMounts {
		src, ok := volumeDirs[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMount %s has no volume", vm.Name)
		}
		if vm.SubPath != "" {
			return nil, fmt.Errorf("volumeMount %s: subPath is not supported by the stand-in", vm.Name)
		}
		opts := []string{"rbind", "rw"}
		if vm.ReadOnly {
			opts = []string{"rbind", "ro"}
		}
		mounts = append(mounts, map[string]any{"destination": vm.MountPath, "type": "bind", "source": src, "options": opts})
	}

	resources := map[string]any{"devices": []map[string]any{{"allow": false, "access": "rwm"}}}
	if lim := c.Resources.Limits; lim != nil {
		if m, ok := lim[corev1.ResourceMemory]; ok {
			resources["memory"] = map[string]any{"limit": m.Value()}
		}
		if cpu, ok := lim[corev1.ResourceCPU]; ok {
			resources["cpu"] = map[string]any{"quota": cpu.MilliValue() * 100, "period": 100000}
		}
	}

	cwd := c.WorkingDir
	if cwd == "" {
		cwd = img.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	spec := map[string]any{
		"ociVersion": "1.0.2",
		"process": map[string]any{
			"terminal": false,
			"user":     map[string]any{"uid": uid, "gid": gid, "additionalGids": groups},
			"args":     args,
			"env":      env,
			"cwd":      cwd,
			"capabilities": map[string]any{"bounding": capabilities, "effective": capabilities, "permitted": capabilities,
				"inheritable": []string{}, "ambient": []string{}},
			"noNewPrivileges": csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation,
		},
		"root":     map[string]any{"path": "rootfs", "readonly": csc.ReadOnlyRootFilesystem != nil && *csc.ReadOnlyRootFilesystem},
		"hostname": pod.Name,
		"mounts":   mounts,
		"linux": map[string]any{
			"cgroupsPath": "/cardplane-standin/" + pod.Name,
			"resources":   resources,
			"namespaces": []map[string]any{{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
				{"type": "network", "path": "/var/run/netns/" + run.netns}},
			"maskedPaths": []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
				"/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			"readonlyPaths": []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	return json.MarshalIndent(spec, "", " ")
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
	err := retryOnConflict(func() error {
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

func retryOnConflict(f func() error) error {
	var err error
	for range 10 {
		if err = f(); !apierrors.IsConflict(err) {
			return err
		}
	}
	return err
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
	n.t.Logf("stand-in node: pod %s stopped (exit code %d); its last lines:\n%s", run.pod.Name, run.exitCode, tail(run.logPath))
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

// Balance is a Service of type LoadBalancer: it listens on the host's loopback and spreads connections
// over the ready pods matching the selector of Service namespace/name (read at each connection, so it may be
// created later), on its first port's target port.
func (n *standinNode) Balance(ctx context.Context, namespace, name string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	var next atomic.Uint64
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			target, ok := n.endpoint(ctx, namespace, name, next.Add(1))
			if !ok {
				conn.Close() // no Service or no ready endpoints: refused, as by kube-proxy
				continue
			}
			go pipe(conn, target)
		}
	}()
	return ln.Addr().String(), nil
}

// endpoint picks the i-th (modulo) ready endpoint of a Service.
func (n *standinNode) endpoint(ctx context.Context, namespace, name string, i uint64) (string, bool) {
	svc := &corev1.Service{}
	if err := n.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, svc); err != nil || len(svc.Spec.Ports) == 0 {
		return "", false
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	var ready []*podRun
	n.mu.Lock()
	for _, r := range n.pods {
		if r.ready.Load() && r.pod.Namespace == namespace && sel.Matches(labels.Set(r.pod.Labels)) {
			ready = append(ready, r)
		}
	}
	n.mu.Unlock()
	if len(ready) == 0 {
		return "", false
	}
	slices.SortFunc(ready, func(a, b *podRun) int { return strings.Compare(a.pod.Name, b.pod.Name) })
	r := ready[i%uint64(len(ready))]
	target := svc.Spec.Ports[0].TargetPort
	port := target.IntVal
	if target.Type == intstr.String {
		port = r.ports[target.StrVal]
	}
	return net.JoinHostPort(r.ip, strconv.Itoa(int(port))), true
}

func pipe(conn net.Conn, target string) {
	defer conn.Close()
	up, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stand-in: dial %s: %v\n", target, err)
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, conn); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
	<-done
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}
