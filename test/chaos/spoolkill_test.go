package chaos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver/adapters/upay"
)

// TestSpooledEventsSurviveSIGKILL: the API server is unreachable, so the real manager binary spools and
// acknowledges every callback; it is then SIGKILLed with the events still in its spool, the API server comes
// back, and the restarted manager replays the spool: every acknowledged event ends up stored.
func TestSpooledEventsSurviveSIGKILL(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	bin := buildManager(t, tmp)
	proxy, err := NewProxy(hostPort(env.Config.Host))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	kc, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(tmp, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(strings.ReplaceAll(string(kc), hostPort(env.Config.Host), proxy.Addr())), 0o600); err != nil {
		t.Fatal(err)
	}

	ep := newUPayEndpoint(t, "spoolkill")
	addr := freePort(t)
	mp := &managerProc{bin: bin, log: filepath.Join(tmp, "manager.log"),
		args: []string{"manager", "--webhook-plain-http", "--webhook-bind-address=" + addr, "--metrics-bind-address=0",
			"--health-probe-bind-address=0", "--spool-dir=" + filepath.Join(tmp, "spool"), "--leader-elect=false"},
		env: append(os.Environ(), "KUBECONFIG="+kubeconfig)}
	t.Cleanup(mp.kill)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(mp.log)
			t.Logf("manager log:\n%s", b)
		}
	})
	if err := mp.start(); err != nil {
		t.Fatal(err)
	}
	// Ready as the manager sees it (its cache), before the API server is cut off from it.
	if !waitFor(t, 30*time.Second, "endpoint Ready", func() bool {
		return ready(env.Client, ep)() && admitted(probe(http.DefaultClient, "http://"+addr, ep))
	}) {
		t.FailNow()
	}

	proxy.Cut()
	resolved := &endpointconfig.Resolved{Endpoint: ep, SigningKey: []byte(upayKey)}
	t0 := time.Now().Add(-time.Hour)
	want := map[string]cardsv1alpha1.CardPhase{}
	acked := 0
	for i := 0; i < 20; i++ {
		card, st := fmt.Sprintf("Z%d", i%5), []string{"1", "3"}[(i/5+i)%2]
		want[card] = map[string]cardsv1alpha1.CardPhase{"1": cardsv1alpha1.CardActive, "3": cardsv1alpha1.CardFrozen}[st]
		body := fmt.Sprintf(`{"event":"CSC_STATUS_CHANGE","trace":"t","orderNo":"z-%d","timestamp":%d,"detail":{"cardId":%q,"cardNumber":"5326********1234","status":%q,"orderNo":"z-%d","customerNo":"C"}}`,
			i, t0.Add(time.Duration(i)*time.Second).UnixMilli(), card, st, i)
		h, wire, _ := upay.Encode(resolved, []byte(body), time.Now())
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/"+ep.Namespace+"/upay", bytes.NewReader(wire))
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("callback %d: %v", i, err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && string(answer) == "SUCCESS" {
			acked++
		}
	}
	if acked != 20 {
		t.Fatalf("%d of 20 callbacks acknowledged while the API server was unreachable, want 20 (spooled)", acked)
	}
	mp.kill() // SIGKILL with 20 events in the spool
	proxy.Restore()
	if err := mp.start(); err != nil {
		t.Fatal(err)
	}
	var got map[string]cardsv1alpha1.CardPhase
	ok := waitFor(t, 60*time.Second, "the spool replayed after the restart", func() bool {
		got, _ = cardPhases(ctx, ep.Namespace)
		return fmt.Sprint(got) == fmt.Sprint(want)
	})
	t.Logf("20 callbacks acknowledged from the spool, manager SIGKILLed, restarted: cards %v (want %v), all there: %v", got, want, ok)
}
