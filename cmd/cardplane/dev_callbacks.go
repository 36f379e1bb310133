//go:build !nodev

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cardplane/cardplane/config"
	"github.com/cardplane/cardplane/internal/scheme"
)

// demoCallbacks are example callbacks the demo sends through its own receiver once it is up, in this order, so
// the objects they make are there to look at: a BananaTech holder whose KYC result arrives before its first
// card (kubectl get cardholders shows the holder Approved with one card).
var demoCallbacks = []struct{ endpoint, example string }{
	{"bananatech-main", "bananatech-user-create-result"},
	{"bananatech-main", "bananatech-card-apply-result"},
}

// playDemoCallbacks sends demoCallbacks to the receiver at addr, retrying each for up to a minute while the
// manager starts (the receiver answers 503 until its caches are synced).
func playDemoCallbacks(ctx context.Context, cfg *rest.Config, addr, namespace string) error {
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return err
	}
	examples, err := config.Callbacks()
	if err != nil {
		return err
	}
	base := "http://" + addr
	httpClient := &http.Client{Timeout: 10 * time.Second}
	for _, cb := range demoCallbacks {
		payload := examples[cb.example]
		if payload == nil {
			return fmt.Errorf("no example callback %q", cb.example)
		}
		key := client.ObjectKey{Namespace: namespace, Name: cb.endpoint}
		deadline := time.Now().Add(time.Minute)
		for {
			// simulate sends again while the receiver does not answer at all, so it too keeps the deadline.
			sendCtx, cancel := context.WithDeadline(ctx, deadline)
			code, answer, err := simulate(sendCtx, c, httpClient, key, payload, base, time.Now(), io.Discard)
			cancel()
			if err == nil && code == http.StatusOK {
				break
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				return fmt.Errorf("sending %s to %s: status %d %q: %w", cb.example, key, code, answer, err)
			}
			time.Sleep(time.Second)
		}
		ctrl.Log.WithName("dev").Info("Sent an example callback", "endpoint", key.String(), "example", cb.example)
	}
	return nil
}
