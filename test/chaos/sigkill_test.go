package chaos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver/adapters/upay"
)

// managerProc runs the real `cardplane manager` binary as a child process, so it can be SIGKILLed.
type managerProc struct {
	bin  string
	args []string
	env  []string
	log  string

	mu  sync.Mutex
	cmd *exec.Cmd
	out *os.File
}

func (m *managerProc) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	out, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(m.bin, m.args...)
	cmd.Env = m.env
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return err
	}
	m.cmd, m.out = cmd, out
	return nil
}

// kill sends SIGKILL and reaps the process.
func (m *managerProc) kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
	_ = m.out.Close()
	m.cmd, m.out = nil, nil
}

// terminate sends SIGTERM, as the kubelet does when a pod is deleted, and waits up to grace for the process to
// exit on its own; it reports whether it did (SIGKILL after grace, as the kubelet).
func (m *managerProc) terminate(grace time.Duration) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return true
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(done) }()
	exited := true
	select {
	case <-done:
	case <-time.After(grace):
		exited = false
		_ = m.cmd.Process.Kill()
		<-done
	}
	_ = m.out.Close()
	m.cmd, m.out = nil, nil
	return exited
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestManagerKilledMidLoadLosesNothing: the real manager binary is SIGKILLed a third of the way through a
// load of UPay-style callbacks (each tried at most 5 times, 3 s apart) and started again on the same spool
// directory. Every callback must be acknowledged within its tries, no card may be stored twice, and every
// card must end in the state its last status (by provider time) says — computed here from what was sent.
func TestManagerKilledMidLoadLosesNothing(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()

	bin := buildManager(t, tmp)

	ep := newUPayEndpoint(t, "sigkill")

	addr := freePort(t)
	mp := &managerProc{
		bin: bin,
		args: []string{"manager", "--webhook-plain-http", "--webhook-bind-address=" + addr,
			"--metrics-bind-address=0", "--health-probe-bind-address=0",
			"--spool-dir=" + filepath.Join(tmp, "spool"), "--leader-elect=false"},
		env: append(os.Environ(), "KUBECONFIG="+env.Kubeconfig),
		log: filepath.Join(tmp, "manager.log"),
	}
	t.Cleanup(mp.kill)
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(mp.log); err == nil {
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				if len(lines) > 40 {
					lines = lines[len(lines)-40:]
				}
				t.Logf("manager log (tail):\n%s", strings.Join(lines, "\n"))
			}
		}
	})
	if err := mp.start(); err != nil {
		t.Fatal(err)
	}

	base := "http://" + addr
	hc := &http.Client{Timeout: 5 * time.Second}
	receiverUp := func() bool {
		resp, err := hc.Post(base+"/webhooks/"+ep.Namespace+"/no-such-endpoint", "application/json", strings.NewReader("{}"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNotFound
	}
	if !waitFor(t, 30*time.Second, "receiver answering", receiverUp) {
		t.FailNow()
	}
	if !waitFor(t, 30*time.Second, "endpoint Ready", ready(env.Client, ep)) {
		t.FailNow()
	}

	// The callbacks: 30 cards, 9 statuses each (Active or Frozen at random) with increasing provider
	// timestamps, plus 30 exact duplicates (10 % of 300), all shuffled.
	type callback struct {
		card, status string
		at           time.Time
		id           string
	}
	rng := rand.New(rand.NewSource(11))
	t0 := time.Now().Add(-time.Hour)
	var callbacks []callback
	want := map[string]cardsv1alpha1.CardPhase{}
	phases := map[string]cardsv1alpha1.CardPhase{"1": cardsv1alpha1.CardActive, "3": cardsv1alpha1.CardFrozen}
	const cards, perCard, dups = 30, 9, 30
	for c := 0; c < cards; c++ {
		card := fmt.Sprintf("S%02d", c)
		for i := 0; i < perCard; i++ {
			st := []string{"1", "3"}[rng.Intn(2)]
			callbacks = append(callbacks, callback{card, st, t0.Add(time.Duration(c*100+i) * time.Second), fmt.Sprintf("%s-%d", card, i)})
			want[card] = phases[st] // the last one appended has the latest timestamp
		}
	}
	for _, i := range rng.Perm(len(callbacks))[:dups] {
		callbacks = append(callbacks, callbacks[i])
	}
	rng.Shuffle(len(callbacks), func(i, j int) { callbacks[i], callbacks[j] = callbacks[j], callbacks[i] })

	// The provider: 8 workers, each callback up to 5 tries 3 s apart until 200 SUCCESS.
	resolved := &endpointconfig.Resolved{Endpoint: ep, SigningKey: []byte(upayKey)}
	var acked, lost, tries, failedTries atomic.Int64
	url := base + "/webhooks/" + ep.Namespace + "/upay"
	send := func(cb callback) {
		body := fmt.Sprintf(`{"event":"CSC_STATUS_CHANGE","trace":"t","orderNo":%q,"timestamp":%d,"detail":{"cardId":%q,"cardNumber":"5326********1234","status":%q,"orderNo":%q,"customerNo":"C"}}`,
			cb.id, cb.at.UnixMilli(), cb.card, cb.status, cb.id)
		for try := 0; try < 5; try++ {
			if try > 0 {
				time.Sleep(3 * time.Second)
			}
			tries.Add(1)
			h, wire, err := upay.Encode(resolved, []byte(body), time.Now())
			if err != nil {
				t.Errorf("encode: %v", err)
				return
			}
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(wire))
			req.Header = h
			resp, err := hc.Do(req)
			if err == nil {
				answer, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && string(answer) == "SUCCESS" {
					acked.Add(1)
					return
				}
			}
			failedTries.Add(1)
		}
		lost.Add(1)
	}

	work := make(chan callback)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cb := range work {
				send(cb)
			}
		}()
	}
	killAt := len(callbacks) / 3
	killed := make(chan error, 1)
	start := time.Now()
	for i, cb := range callbacks {
		if i == killAt {
			go func() {
				mp.kill()
				t.Logf("manager SIGKILLed after %d of %d callbacks were handed out (%s into the load)", i, len(callbacks), time.Since(start).Round(time.Millisecond))
				time.Sleep(2 * time.Second)
				killed <- mp.start()
			}()
		}
		work <- cb
		time.Sleep(25 * time.Millisecond) // pace the load over several seconds
	}
	close(work)
	wg.Wait()
	if err := <-killed; err != nil {
		t.Fatalf("restarting the manager: %v", err)
	}
	t.Logf("load done in %s", time.Since(start).Round(time.Millisecond))

	// Every card in its last state, and no card stored twice.
	var got map[string]cardsv1alpha1.CardPhase
	var stored int
	dupObjects := map[string]int{}
	ok := waitFor(t, 30*time.Second, "every card in its last state", func() bool {
		list := &cardsv1alpha1.CardList{}
		if err := env.Client.List(ctx, list, client.InNamespace(ep.Namespace)); err != nil {
			return false
		}
		got, stored = map[string]cardsv1alpha1.CardPhase{}, len(list.Items)
		count := map[string]int{}
		for _, c := range list.Items {
			got[c.Spec.ProviderCardID] = c.Status.Phase
			count[c.Spec.ProviderCardID]++
		}
		dupObjects = map[string]int{}
		for id, n := range count {
			if n > 1 {
				dupObjects[id] = n
			}
		}
		return fmt.Sprint(got) == fmt.Sprint(want) && stored == len(want)
	})
	t.Logf("callbacks sent %d (%d unique, %d exact duplicates), tries %d (%d failed), acknowledged %d, lost %d",
		len(callbacks), len(callbacks)-dups, dups, tries.Load(), failedTries.Load(), acked.Load(), lost.Load())
	t.Logf("cards expected %d, Card objects listed %d, duplicate Card objects %d %v; final states correct %v",
		len(want), stored, stored-len(got), dupObjects, ok)
	if failedTries.Load() == 0 {
		t.Error("no try failed: the SIGKILL did not happen mid-load as planned")
	}
	if lost.Load() != 0 || !ok || len(dupObjects) != 0 {
		t.Errorf("lost %d callbacks, duplicate objects %v; final states %v, want %v", lost.Load(), dupObjects, got, want)
	}
}
