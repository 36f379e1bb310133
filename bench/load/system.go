package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cardplane/cardplane/bench/internal/measure"
	"github.com/cardplane/cardplane/internal/testenv"
)

// system is what the harness measures: a local kube-apiserver and etcd (envtest) and the real manager binary
// as its own process, so its memory and the control plane's are each their own.
type system struct {
	*testenv.Env
	dir         string
	manager     *exec.Cmd
	managerLog  string
	receiver    string // http://host:port of the receiver
	metrics     string // http://host:port/metrics of the manager
	pprof       string // http://host:port of the manager's /debug/pprof
	managerPID  int
	apiPID      int
	etcdPID     int // 0: not found (its CPU is then not reported)
	etcdMetrics string
}

func startSystem(ctx context.Context, managerArgs, managerEnv []string) (*system, error) {
	te, err := testenv.Start()
	if err != nil {
		return nil, err
	}
	s := &system{Env: te}
	if s.dir, err = os.MkdirTemp("", "cardplane-load-"); err != nil {
		s.stop()
		return nil, err
	}
	if err := s.findControlPlane(); err != nil {
		s.stop()
		return nil, err
	}
	if err := s.startManager(ctx, managerArgs, managerEnv); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// findControlPlane finds the PIDs of the kube-apiserver and etcd envtest started, and etcd's metrics.
func (s *system) findControlPlane() error {
	api, err := url.Parse(s.Config.Host)
	if err != nil {
		return err
	}
	if s.apiPID, err = measure.FindProcess("kube-apiserver", "--secure-port="+api.Port()); err != nil {
		return err
	}
	etcd := s.ControlPlane.Etcd.URL
	if etcd == nil {
		return errors.New("envtest did not say where etcd listens")
	}
	s.etcdMetrics = strings.TrimSuffix(etcd.String(), "/") + "/metrics"
	s.etcdPID, _ = measure.FindProcess("etcd", "--listen-client-urls="+strings.TrimSuffix(etcd.String(), "/"))
	return nil
}

// startManager builds cmd/cardplane and runs `cardplane manager` on plain-HTTP loopback ports.
func (s *system) startManager(ctx context.Context, extra, env []string) error {
	bin := filepath.Join(s.dir, "cardplane")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/cardplane")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	receiver, metrics, pprof := freePort(), freePort(), freePort()
	s.receiver, s.metrics, s.pprof = "http://"+receiver, "http://"+metrics+"/metrics", "http://"+pprof
	s.managerLog = filepath.Join(s.dir, "manager.log")
	out, err := os.Create(s.managerLog)
	if err != nil {
		return err
	}
	args := append([]string{"manager", "--webhook-plain-http", "--webhook-bind-address=" + receiver, "--metrics-bind-address=" + metrics, "--metrics-secure=false", "--pprof-bind-address=" + pprof,
		"--health-probe-bind-address=0", "--review-bind-address=0", "--leader-elect=false", "--allow-loopback-destinations",
		"--spool-dir=" + filepath.Join(s.dir, "spool")}, extra...)
	s.manager = exec.Command(bin, args...)
	s.manager.Env = append(append(os.Environ(), "KUBECONFIG="+s.Kubeconfig), env...)
	s.manager.Stdout, s.manager.Stderr = out, out
	if err := s.manager.Start(); err != nil {
		return err
	}
	s.managerPID = s.manager.Process.Pid
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Post(s.receiver+"/webhooks/none/none", "application/json", strings.NewReader("{}")); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the manager's receiver did not answer within a minute (log: %s)", s.managerLog)
}

// heapProfile is where the manager's live heap is, by function (go tool pprof -top, after a GC).
func (s *system) heapProfile(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=12", "-sample_index=inuse_space",
		s.pprof+"/debug/pprof/heap?gc=1").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(no heap profile: %v)", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i, l := range lines { // from the summary line on; the header names a temporary file
		if strings.HasPrefix(strings.TrimSpace(l), "Showing nodes") {
			return strings.Join(lines[i:], "\n")
		}
	}
	return strings.Join(lines, "\n")
}

// footprint is one reading of the processes' memory and etcd's size.
type footprint struct {
	managerRSS, apiRSS int64
	etcdInUse, etcdDB  float64
}

func (s *system) footprint(ctx context.Context) (footprint, error) {
	var f footprint
	var err error
	if f.managerRSS, err = measure.RSS(s.managerPID); err != nil {
		return f, fmt.Errorf("manager RSS: %w", err)
	}
	if f.apiRSS, err = measure.RSS(s.apiPID); err != nil {
		return f, fmt.Errorf("kube-apiserver RSS: %w", err)
	}
	m, err := measure.Scrape(ctx, http.DefaultClient, s.etcdMetrics)
	if err != nil {
		return f, err
	}
	if f.etcdInUse, err = m.Sum("etcd_mvcc_db_total_size_in_use_in_bytes", nil); err != nil {
		return f, err
	}
	f.etcdDB, err = m.Sum("etcd_mvcc_db_total_size_in_bytes", nil)
	return f, err
}

func (s *system) stop() {
	if s.manager != nil && s.manager.Process != nil {
		_ = s.manager.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = s.manager.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = s.manager.Process.Kill()
		}
	}
	if s.Env != nil {
		_ = s.Stop()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}
