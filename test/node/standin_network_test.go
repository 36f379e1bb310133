package node_test

// The stand-in node's network: a bridge, a network namespace and veth per pod, the pod's `kubernetes` Service
// address forwarded to the API server, and a load balancer for a Service over its ready pods.

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

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
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
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

// Balance is a Service of type LoadBalancer: it listens on the host's loopback and spreads connections
// over the ready endpoints of Service namespace/name (which may be created later). Like kube-proxy, it
// programs its view of the endpoints periodically (proxySync), not at each change: a pod that just began
// terminating may still be sent connections for up to that long, as in a cluster.
func (n *standinNode) Balance(ctx context.Context, namespace, name string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	var endpoints atomic.Pointer[[]string]
	endpoints.Store(&[]string{})
	go func() {
		for {
			eps := n.readyEndpoints(ctx, namespace, name)
			endpoints.Store(&eps)
			select {
			case <-ctx.Done():
				return
			case <-time.After(proxySync):
			}
		}
	}()
	var next atomic.Uint64
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			eps := *endpoints.Load()
			if len(eps) == 0 {
				conn.Close() // no Service or no ready endpoints: refused, as by kube-proxy
				continue
			}
			go pipe(conn, eps[next.Add(1)%uint64(len(eps))])
		}
	}()
	return ln.Addr().String(), nil
}

// proxySync is how often the balancer reprograms its endpoints (kube-proxy's --iptables-min-sync-period
// defaults to 1 s; ingress controllers and cloud load balancers are often slower).
const proxySync = time.Second

// readyEndpoints are a Service's ready endpoints from its EndpointSlices (which the controller manager's
// EndpointSlice controller keeps from the pods' readiness and termination), sorted.
func (n *standinNode) readyEndpoints(ctx context.Context, namespace, name string) []string {
	svc := &corev1.Service{}
	if err := n.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, svc); err != nil || len(svc.Spec.Ports) == 0 {
		return nil
	}
	var slices discoveryv1.EndpointSliceList
	if err := n.c.List(ctx, &slices, client.InNamespace(namespace), client.MatchingLabels{discoveryv1.LabelServiceName: name}); err != nil {
		return nil
	}
	var ready []string
	for _, sl := range slices.Items {
		var port int32
		for _, p := range sl.Ports {
			if p.Name != nil && *p.Name == svc.Spec.Ports[0].Name && p.Port != nil {
				port = *p.Port
			}
		}
		for _, ep := range sl.Endpoints {
			if port != 0 && ep.Conditions.Ready != nil && *ep.Conditions.Ready && len(ep.Addresses) > 0 {
				ready = append(ready, net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port))))
			}
		}
	}
	sort.Strings(ready)
	return ready
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
