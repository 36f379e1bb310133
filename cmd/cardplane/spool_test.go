package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/webhookserver/event"
	"github.com/cardplane/cardplane/webhookserver/spool"
)

// runSpool runs `cardplane spool args...` and returns its output and error.
func runSpool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newSpoolCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// TestSpoolCommands: list shows a dead letter with enough of its reason to act on, show prints it, and
// requeue by ID or with --all leaves a request the replica adopts. (Before, --all was registered on "show",
// so `cardplane spool requeue --all` failed with "unknown flag", and reasons were cut at 100 characters,
// before the part that names the quota.)
func TestSpoolCommands(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	e := spool.Entry{Endpoint: client.ObjectKey{Namespace: "payments", Name: "upay-main"}, Received: time.Now(),
		Event: event.Event{Type: "CSC_STATUS_CHANGE", ID: "o-1", CardID: "C1", Card: &event.Card{Phase: cardsv1alpha1.CardActive}}}
	const why = `creating payments/upay-main-c1: cards.cards.cardplane.io "upay-main-c1" is forbidden: exceeded quota: cards, requested: count/cards.cards.cardplane.io=1`
	if err := sp.DeadLetter(e, why, time.Now()); err != nil {
		t.Fatal(err)
	}
	_ = sp.Close()

	out, err := runSpool(t, "list", "--dir", dir)
	if err != nil || !strings.Contains(out, "1 dead letters") || !strings.Contains(out, "o-1") || !strings.Contains(out, "exceeded quota") {
		t.Fatalf("spool list: %v\n%s", err, out)
	}
	c, err := spool.Inspect(dir)
	if err != nil || len(c.DeadLetters) != 1 {
		t.Fatalf("inspect: %+v %v", c, err)
	}
	id := c.DeadLetters[0].ID
	out, err = runSpool(t, "show", id, "--dir", dir)
	var shown map[string]any
	if err != nil || json.Unmarshal([]byte(out), &shown) != nil {
		t.Fatalf("spool show: %v\n%s", err, out)
	}
	if _, err := runSpool(t, "requeue", "--dir", dir); err == nil {
		t.Error("requeue with neither IDs nor --all succeeded")
	}
	for _, args := range [][]string{{"requeue", id}, {"requeue", "--all"}} {
		if out, err := runSpool(t, append(args, "--dir", dir)...); err != nil || !strings.Contains(out, "requested") {
			t.Errorf("spool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	requests, _ := filepath.Glob(filepath.Join(dir, "requeue*"))
	if len(requests) != 2 {
		entries, _ := os.ReadDir(dir)
		t.Errorf("%d requeue requests in the directory, want 2: %v", len(requests), entries)
	}
}
