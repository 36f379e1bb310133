package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/testenv"
)

// sinksFixture is a control plane with the CRDs and no controller: the tests play the controller.
type sinksFixture struct {
	env *testenv.Env
	c   client.Client
}

// TestSinks runs `cardplane sinks` against a real API server. One control plane serves every subtest, since
// this package has no TestMain to stop a shared one.
func TestSinks(t *testing.T) {
	logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	f := &sinksFixture{env: env, c: env.Client}
	for _, ns := range []string{"team-a", "team-b"} {
		if err := f.c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("List", f.testList)
	t.Run("DeadLetters", f.testDeadLetters)
	t.Run("Resend", f.testResend)
	t.Run("ResendWait", f.testResendWait)
	t.Run("Replay", f.testReplay)
	t.Run("ReplayWait", f.testReplayWait)
	t.Run("NotFound", f.testNotFound)
}

// run runs `cardplane sinks args... --kubeconfig K` as main would, through the whole command tree.
func (f *sinksFixture) run(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = execute(append(append([]string{"sinks"}, args...), "--kubeconfig", f.env.Kubeconfig), &out, &errOut)
	return out.String(), errOut.String(), err
}

// create makes a sink and then writes its status, as the controller would.
func (f *sinksFixture) create(t *testing.T, ns, name string, sink cardsv1alpha1.SinkSpec, status cardsv1alpha1.CardEventSinkStatus) {
	t.Helper()
	ctx := context.Background()
	obj := &cardsv1alpha1.CardEventSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: cardsv1alpha1.CardEventSinkSpec{Sink: sink}}
	if err := f.c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	for i := range status.Conditions {
		status.Conditions[i].LastTransitionTime = metav1.Now()
	}
	obj.Status = status
	if err := f.c.Status().Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
}

func (f *sinksFixture) get(t *testing.T, ns, name string) *cardsv1alpha1.CardEventSink {
	t.Helper()
	sink := &cardsv1alpha1.CardEventSink{}
	if err := f.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, sink); err != nil {
		t.Fatal(err)
	}
	return sink
}

func webhookSink() cardsv1alpha1.SinkSpec {
	return cardsv1alpha1.SinkSpec{Webhook: &cardsv1alpha1.WebhookSink{URL: "https://orders.example.com/hook",
		SecretRef: cardsv1alpha1.LocalObjectReference{Name: "orders-webhook"}}}
}

func kafkaSink() cardsv1alpha1.SinkSpec {
	return cardsv1alpha1.SinkSpec{Kafka: &cardsv1alpha1.KafkaSink{Brokers: []string{"kafka:9092"}, Topic: "card-events"}}
}

func deadLetter(name string, seq int64, at time.Time, reason string) cardsv1alpha1.DeadLetter {
	return cardsv1alpha1.DeadLetter{Kind: "Card", Name: name, EventID: "evt-" + name, StateSequence: seq, Attempts: 5,
		Reason: reason, Time: &metav1.Time{Time: at}}
}

func readyCondition(status metav1.ConditionStatus, reason string) metav1.Condition {
	return metav1.Condition{Type: cardsv1alpha1.ConditionReady, Status: status, Reason: reason, Message: "test"}
}

// rows splits table output into lines of fields.
func rows(out string) [][]string {
	var r [][]string
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 {
			r = append(r, f)
		}
	}
	return r
}

// playController waits for annotation on the sink, then does what the controller would: act(sink, the
// annotation's value) and the
// annotation removed, in that order unless statusLast, which writes the status half a second after the
// annotation goes (the controller may write the two apart). The returned channel closes when it is done.
func (f *sinksFixture) playController(t *testing.T, ns, name, annotation string, statusLast bool,
	act func(sink *cardsv1alpha1.CardEventSink, value string)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		key := client.ObjectKey{Namespace: ns, Name: name}
		sink := &cardsv1alpha1.CardEventSink{}
		for {
			if err := f.c.Get(ctx, key, sink); err != nil {
				t.Errorf("controller: %v", err)
				return
			}
			if _, ok := sink.Annotations[annotation]; ok {
				break
			}
			select {
			case <-ctx.Done():
				t.Errorf("controller: the annotation %s never appeared", annotation)
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		value := sink.Annotations[annotation]
		writeStatus := func() {
			act(sink, value)
			if err := f.c.Status().Update(ctx, sink); err != nil {
				t.Errorf("controller: status: %v", err)
			}
		}
		if !statusLast {
			writeStatus()
		}
		patch := []byte(`{"metadata":{"annotations":{"` + annotation + `":null}}}`)
		if err := f.c.Patch(ctx, sink, client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Errorf("controller: removing the annotation: %v", err)
		}
		if statusLast {
			time.Sleep(500 * time.Millisecond)
			writeStatus()
		}
	}()
	return done
}

func (f *sinksFixture) testList(t *testing.T) {
	f.create(t, "team-a", "orders", webhookSink(), cardsv1alpha1.CardEventSinkStatus{
		Conditions: []metav1.Condition{readyCondition(metav1.ConditionTrue, "Ready")},
		State:      cardsv1alpha1.DestinationHealthy, Delivered: 120, Failed: 3, Filtered: 40, DeadLettered: 2, Pending: 4, LagSeconds: 90})
	f.create(t, "team-a", "payouts", kafkaSink(), cardsv1alpha1.CardEventSinkStatus{
		Conditions: []metav1.Condition{readyCondition(metav1.ConditionFalse, "FilterInvalid")}})
	f.create(t, "team-b", "ledger", webhookSink(), cardsv1alpha1.CardEventSinkStatus{})

	out, stderr, err := f.run("list", "-n", "team-a")
	if err != nil || stderr != "" {
		t.Fatalf("list: %v\n%s%s", err, out, stderr)
	}
	want := [][]string{
		{"NAME", "READY", "KIND", "STATE", "DELIVERED", "FAILED", "FILTERED", "DEAD", "PENDING", "LAG"},
		{"orders", "True", "webhook", "Healthy", "120", "3", "40", "2", "4", "90s"},
		{"payouts", "False", "(FilterInvalid)", "kafka", "-", "0", "0", "0", "0", "0", "0s"},
	}
	if got := rows(out); !equalRows(got, want) {
		t.Errorf("list -n team-a:\n%s\nwant rows %q", out, want)
	}

	out, _, err = f.run("list", "-A")
	if err != nil {
		t.Fatalf("list -A: %v", err)
	}
	got := rows(out)
	if len(got) != 4 || got[0][0] != "NAMESPACE" || strings.Join(got[3][:2], " ") != "team-b ledger" ||
		!strings.Contains(out, "Unknown (not reconciled yet)") {
		t.Errorf("list -A:\n%s", out)
	}

	if out, _, err = f.run("list", "-n", "default"); err != nil || !strings.Contains(out, "No CardEventSinks in namespace default.") {
		t.Errorf("list of an empty namespace: %v\n%s", err, out)
	}
	_, _, err = f.run("list", "-A", "-n", "team-a")
	if err == nil || !strings.Contains(describeError(err), "give --namespace or --all-namespaces, not both") {
		t.Errorf("list -A -n: %v", err)
	}
}

func equalRows(got, want [][]string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if strings.Join(got[i], " ") != strings.Join(want[i], " ") {
			return false
		}
	}
	return true
}

func (f *sinksFixture) testDeadLetters(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	// Newest first in the status, to see that the output is oldest first anyway.
	letters := []cardsv1alpha1.DeadLetter{
		deadLetter("card-2", 7, t0.Add(time.Minute), "HTTP 400: amount missing"),
		deadLetter("card-1", 3, t0, "HTTP 410: gone"),
	}
	letters[0].DeadLetterSink = "Delivered"
	f.create(t, "team-a", "dl", webhookSink(), cardsv1alpha1.CardEventSinkStatus{DeadLettered: 2, DeadLetters: letters})
	f.create(t, "team-a", "clean", webhookSink(), cardsv1alpha1.CardEventSinkStatus{})

	out, _, err := f.run("dead-letters", "dl", "-n", "team-a")
	if err != nil {
		t.Fatalf("dead-letters: %v\n%s", err, out)
	}
	got := rows(out)
	wantHeader := "TIME KIND OBJECT SEQ ATTEMPTS EVENT ID DLQ REASON"
	if len(got) < 3 || strings.Join(got[0], " ") != wantHeader ||
		strings.Join(got[1], " ") != "2025-06-01T08:00:00Z Card card-1 3 5 evt-card-1 - HTTP 410: gone" ||
		strings.Join(got[2], " ") != "2025-06-01T08:01:00Z Card card-2 7 5 evt-card-2 Delivered HTTP 400: amount missing" ||
		!strings.Contains(out, "2 dead letters of cardeventsink team-a/dl") {
		t.Errorf("dead-letters table:\n%s", out)
	}

	out, _, err = f.run("dead-letters", "team-a/dl", "-o", "json")
	var decoded []cardsv1alpha1.DeadLetter
	if err != nil || json.Unmarshal([]byte(out), &decoded) != nil || len(decoded) != 2 ||
		decoded[0].Name != "card-1" || decoded[1].Name != "card-2" || decoded[1].Reason != "HTTP 400: amount missing" {
		t.Errorf("dead-letters -o json: %v\n%s", err, out)
	}

	out, _, err = f.run("dead-letters", "clean", "-n", "team-a")
	if err != nil || !strings.Contains(out, "cardeventsink team-a/clean has no dead letters") {
		t.Errorf("dead-letters of a clean sink: %v\n%s", err, out)
	}
	if out, _, err = f.run("dead-letters", "clean", "-n", "team-a", "-o", "json"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("dead-letters -o json of a clean sink: %v\n%s", err, out)
	}
	_, _, err = f.run("dead-letters", "dl", "-n", "team-a", "-o", "yaml")
	if err == nil || !strings.Contains(describeError(err), `--output "yaml": give table or json`) {
		t.Errorf("dead-letters -o yaml: %v", err)
	}
}

func (f *sinksFixture) testResend(t *testing.T) {
	f.create(t, "team-a", "resend", webhookSink(), cardsv1alpha1.CardEventSinkStatus{DeadLettered: 2, DeadLetters: []cardsv1alpha1.DeadLetter{
		deadLetter("card-1", 1, time.Now().Add(-time.Hour), "timeout"), deadLetter("card-2", 1, time.Now(), "timeout")}})
	f.create(t, "team-a", "resend-empty", webhookSink(), cardsv1alpha1.CardEventSinkStatus{})

	before := time.Now()
	out, _, err := f.run("resend", "resend", "-n", "team-a")
	if err != nil || !strings.Contains(out, "requested a resend of the 2 dead letters of cardeventsink team-a/resend") {
		t.Fatalf("resend: %v\n%s", err, out)
	}
	first := f.get(t, "team-a", "resend").Annotations[cardsv1alpha1.AnnotationResendDeadLetters]
	at, err := time.Parse(time.RFC3339Nano, first)
	if err != nil || at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("annotation %s=%q: not the time of the request (%v)", cardsv1alpha1.AnnotationResendDeadLetters, first, err)
	}
	if _, _, err := f.run("resend", "team-a/resend"); err != nil {
		t.Fatal(err)
	}
	if again := f.get(t, "team-a", "resend").Annotations[cardsv1alpha1.AnnotationResendDeadLetters]; again == first {
		t.Errorf("a repeated resend left the annotation at %q: the controller would not see a new request", again)
	}

	_, _, err = f.run("resend", "resend-empty", "-n", "team-a")
	if err == nil || !strings.Contains(err.Error(), "cardeventsink team-a/resend-empty has no dead letters to resend") {
		t.Errorf("resend of an empty list: %v", err)
	}
	if _, ok := f.get(t, "team-a", "resend-empty").Annotations[cardsv1alpha1.AnnotationResendDeadLetters]; ok {
		t.Error("resend of an empty list set the annotation")
	}
}

func (f *sinksFixture) testResendWait(t *testing.T) {
	f.create(t, "team-a", "resend-wait", webhookSink(), cardsv1alpha1.CardEventSinkStatus{DeadLettered: 1,
		DeadLetters: []cardsv1alpha1.DeadLetter{deadLetter("card-1", 1, time.Now(), "timeout")}})
	done := f.playController(t, "team-a", "resend-wait", cardsv1alpha1.AnnotationResendDeadLetters, false,
		func(s *cardsv1alpha1.CardEventSink, _ string) { s.Status.DeadLetters = nil })
	out, _, err := f.run("resend", "resend-wait", "-n", "team-a", "--wait", "--timeout", "20s")
	<-done
	if err != nil || !strings.Contains(out, "the controller took the request") || !strings.Contains(out, "until it is delivered (0 now)") {
		t.Errorf("resend --wait: %v\n%s", err, out)
	}

	if _, _, err := f.run("resend", "resend-wait", "-n", "team-a"); err == nil || !strings.Contains(err.Error(), "no dead letters to resend") {
		t.Errorf("resend after the controller cleared the list: %v", err)
	}

	// No controller: --wait gives up, says so, and leaves the request in place.
	f.create(t, "team-a", "resend-nobody", webhookSink(), cardsv1alpha1.CardEventSinkStatus{DeadLettered: 1,
		DeadLetters: []cardsv1alpha1.DeadLetter{deadLetter("card-1", 1, time.Now(), "timeout")}})
	_, _, err = f.run("resend", "resend-nobody", "-n", "team-a", "--wait", "--timeout", "1s")
	if err == nil || !strings.Contains(err.Error(), "the controller did not take the request within 1s") {
		t.Errorf("resend --wait without a controller: %v", err)
	}
	if _, ok := f.get(t, "team-a", "resend-nobody").Annotations[cardsv1alpha1.AnnotationResendDeadLetters]; !ok {
		t.Error("the request is gone after --wait gave up")
	}
}

func (f *sinksFixture) testReplay(t *testing.T) {
	f.create(t, "team-a", "replay", webhookSink(), cardsv1alpha1.CardEventSinkStatus{})
	annotation := func() string {
		return f.get(t, "team-a", "replay").Annotations[cardsv1alpha1.AnnotationReplayFrom]
	}

	out, _, err := f.run("replay", "replay", "-n", "team-a", "--since", "2h")
	want := time.Now().Add(-2 * time.Hour)
	if err != nil || !strings.Contains(out, "requested a replay of cardeventsink team-a/replay from ") {
		t.Fatalf("replay --since: %v\n%s", err, out)
	}
	from, err := time.Parse(time.RFC3339, annotation())
	if err != nil || from.Location() != time.UTC || want.Sub(from).Abs() > time.Second {
		t.Errorf("replay --since 2h set %q (%v), want about %s", annotation(), err, want.UTC().Format(time.RFC3339))
	}

	if _, _, err := f.run("replay", "replay", "-n", "team-a", "--from", "2025-06-01T10:00:00+02:00"); err != nil {
		t.Fatal(err)
	}
	if got := annotation(); got != "2025-06-01T08:00:00Z" {
		t.Errorf("replay --from 2025-06-01T10:00:00+02:00 set %q, want 2025-06-01T08:00:00Z", got)
	}

	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", future}, "--from " + future + " is in the future"},
		{[]string{"--since", "1h", "--from", "2025-06-01T08:00:00Z"}, "give exactly one of --since DURATION or --from TIME"},
		{nil, "give exactly one of --since DURATION or --from TIME"},
		{[]string{"--from", "2025-06-01 08:00"}, `--from "2025-06-01 08:00" is not an RFC 3339 time`},
		{[]string{"--from", "yesterday"}, `cannot parse "yesterday"`},
		{[]string{"--since", "-1h"}, "--since -1h0m0s: give a positive duration"},
		{[]string{"--since", "soon"}, `invalid argument "soon" for "--since"`},
	} {
		_, _, err := f.run(append([]string{"replay", "replay", "-n", "team-a"}, c.args...)...)
		if err == nil || !strings.Contains(describeError(err), c.want) || !strings.Contains(describeError(err), "Run 'cardplane sinks replay --help'") {
			t.Errorf("replay %s: got %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	if got := annotation(); got != "2025-06-01T08:00:00Z" {
		t.Errorf("a refused replay changed the annotation to %q", got)
	}
}

func (f *sinksFixture) testReplayWait(t *testing.T) {
	// An earlier replay is in the status: --wait must wait for this one's, written after the annotation goes.
	earlier := &cardsv1alpha1.ReplayStatus{From: &metav1.Time{Time: time.Now().Add(-48 * time.Hour).Truncate(time.Second)},
		Queued: 1, Time: &metav1.Time{Time: time.Now().Add(-47 * time.Hour)}}
	f.create(t, "team-a", "replay-wait", kafkaSink(), cardsv1alpha1.CardEventSinkStatus{Replay: earlier})
	done := f.playController(t, "team-a", "replay-wait", cardsv1alpha1.AnnotationReplayFrom, true, func(s *cardsv1alpha1.CardEventSink, value string) {
		from, err := time.Parse(time.RFC3339, value)
		if err != nil {
			t.Errorf("controller: %v", err)
		}
		s.Status.Replay = &cardsv1alpha1.ReplayStatus{From: &metav1.Time{Time: from}, Queued: 7, Time: &metav1.Time{Time: time.Now()}}
	})
	out, _, err := f.run("replay", "replay-wait", "-n", "team-a", "--since", "30m", "--wait", "--timeout", "20s")
	<-done
	if err != nil || !strings.Contains(out, "the controller queued 7 objects again") {
		t.Errorf("replay --wait: %v\n%s", err, out)
	}
}

func (f *sinksFixture) testNotFound(t *testing.T) {
	f.create(t, "team-a", "only-in-a", webhookSink(), cardsv1alpha1.CardEventSinkStatus{
		DeadLetters: []cardsv1alpha1.DeadLetter{deadLetter("card-1", 1, time.Now(), "timeout")}})
	for _, args := range [][]string{
		{"dead-letters", "only-in-a", "-n", "team-b"},
		{"dead-letters", "team-b/only-in-a"},
		{"resend", "only-in-a", "-n", "team-b"},
		{"replay", "only-in-a", "-n", "team-b", "--since", "1h"},
	} {
		_, _, err := f.run(args...)
		if err == nil || !strings.Contains(err.Error(), "cardeventsink only-in-a not found in namespace team-b") ||
			!strings.Contains(err.Error(), "cardplane sinks list -A") {
			t.Errorf("sinks %s: %v", strings.Join(args, " "), err)
		}
	}
	if s := f.get(t, "team-a", "only-in-a"); s.Annotations != nil {
		t.Errorf("requests for team-b annotated the sink of team-a: %v", s.Annotations)
	}
	_, _, err := f.run("resend", "team-a/only-in-a", "-n", "team-b")
	if err == nil || !strings.Contains(describeError(err), "team-a/only-in-a is in namespace team-a, --namespace says team-b") {
		t.Errorf("resend NAMESPACE/NAME with another --namespace: %v", err)
	}
	_, _, err = f.run("resend")
	if err == nil || !strings.Contains(describeError(err), "name one CardEventSink") {
		t.Errorf("resend without a name: %v", err)
	}
}
