package controllers_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// polRecord is one request a polServer accepted (signature verified).
type polRecord struct {
	ID, Type, Name, Phase, Auth string
	Seq                         int64
	Data                        json.RawMessage
}

// polServer is an HTTP sink on loopback: it verifies the Standard Webhooks signature (destinationSecret),
// records the Authorization header and answers per object name what status says (204 by default).
type polServer struct {
	*httptest.Server
	mu       sync.Mutex
	got      []polRecord
	rejected int
	// status answers this HTTP status for an object name; count limits how many times (0: always).
	status map[string]int
	count  map[string]int
}

func polNewServer(t *testing.T) *polServer {
	t.Helper()
	s := &polServer{status: map[string]int{}, count: map[string]int{}}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(destinationSecret, "whsec_"))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		sec, _ := strconv.ParseInt(ts, 10, 64)
		s.mu.Lock()
		defer s.mu.Unlock()
		if !strings.Contains(" "+r.Header.Get("webhook-signature")+" ", " "+want+" ") || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
			s.rejected++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var env struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		_ = json.Unmarshal(body, &env)
		obj := env.Data
		if env.Type == "dead_letter" {
			var dl struct {
				Data json.RawMessage `json:"data"`
			}
			_ = json.Unmarshal(env.Data, &dl)
			obj = dl.Data
		}
		var o struct {
			Metadata struct{ Name string } `json:"metadata"`
			Status   struct {
				Phase         string `json:"phase"`
				StateSequence int64  `json:"stateSequence"`
			} `json:"status"`
		}
		_ = json.Unmarshal(obj, &o)
		name := o.Metadata.Name
		if code := s.status[name]; code != 0 && env.Type != "dead_letter" {
			if n := s.count[name]; n > 0 {
				if n == 1 {
					delete(s.status, name)
				}
				s.count[name] = n - 1
			}
			w.WriteHeader(code)
			return
		}
		s.got = append(s.got, polRecord{ID: id, Type: env.Type, Name: name, Phase: o.Status.Phase, Auth: r.Header.Get("Authorization"),
			Seq: o.Status.StateSequence, Data: env.Data})
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return s
}

// answer makes the server answer code for name, always (n == 0) or n times; code 0 answers 204 again.
func (s *polServer) answer(name string, code, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == 0 {
		delete(s.status, name)
		delete(s.count, name)
		return
	}
	s.status[name], s.count[name] = code, n
}

// of lists the accepted requests about object name (any type).
func (s *polServer) of(name string) []polRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []polRecord
	for _, r := range s.got {
		if r.Name == name {
			out = append(out, r)
		}
	}
	return out
}

// polBrief is what records say without their bodies.
func polBrief(rs []polRecord) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s %s seq %d %s id %s", r.Type, r.Name, r.Seq, r.Phase, r.ID))
	}
	return out
}

func (s *polServer) all() []polRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]polRecord(nil), s.got...)
}

// polSetup makes a namespace with the labelled signing Secret "polsig" the sinks sign with.
func polSetup(t *testing.T) string {
	t.Helper()
	ns := newNamespace(t)
	polSecret(t, ns, "polsig", true, map[string]string{cardsv1alpha1.SecretKeyDestinationSecret: destinationSecret})
	return ns
}

func polSecret(t *testing.T, ns, name string, labelled bool, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	if labelled {
		s.Labels = map[string]string{cardsv1alpha1.LabelCredentials: "true"}
	}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// polWebhook is a webhook SinkSpec to url, signed with "polsig".
func polWebhook(url string) cardsv1alpha1.SinkSpec {
	return cardsv1alpha1.SinkSpec{Webhook: &cardsv1alpha1.WebhookSink{URL: url + "/hooks",
		SecretRef: cardsv1alpha1.LocalObjectReference{Name: "polsig"}}}
}

func polCreateSink(t *testing.T, ns, name string, spec cardsv1alpha1.CardEventSinkSpec) *cardsv1alpha1.CardEventSink {
	t.Helper()
	cs := &cardsv1alpha1.CardEventSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := k8s.Create(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

func polGetSink(t *testing.T, ns, name string) *cardsv1alpha1.CardEventSink {
	t.Helper()
	cs := &cardsv1alpha1.CardEventSink{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

// polPatchSink changes a sink with a merge patch.
func polPatchSink(t *testing.T, ns, name string, change func(*cardsv1alpha1.CardEventSink)) {
	t.Helper()
	cs := polGetSink(t, ns, name)
	before := cs.DeepCopy()
	change(cs)
	if err := k8s.Patch(context.Background(), cs, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
}

func polAnnotate(t *testing.T, ns, name, key, value string) {
	t.Helper()
	polPatchSink(t, ns, name, func(cs *cardsv1alpha1.CardEventSink) {
		if cs.Annotations == nil {
			cs.Annotations = map[string]string{}
		}
		cs.Annotations[key] = value
	})
}

func polReady(cs *cardsv1alpha1.CardEventSink) *metav1.Condition {
	return apimeta.FindStatusCondition(cs.Status.Conditions, "Ready")
}

// polDump logs a sink's status (on a timeout).
func polDump(t *testing.T, ns, name string) func() {
	return func() {
		cs := &cardsv1alpha1.CardEventSink{}
		_ = k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, cs)
		b, _ := json.MarshalIndent(cs.Status, "", "  ")
		t.Logf("sink %s/%s annotations %v status %s", ns, name, cs.Annotations, b)
	}
}

// polEvent reports whether an Event with reason is recorded about the object name (events.k8s.io/v1, which
// the manager's recorder writes, or core/v1).
func polEvent(t *testing.T, ns, reason, name string) bool {
	t.Helper()
	ctx := context.Background()
	evs := &eventsv1.EventList{}
	if err := k8s.List(ctx, evs, client.InNamespace(ns)); err == nil {
		for _, e := range evs.Items {
			if e.Reason == reason && e.Regarding.Name == name {
				return true
			}
		}
	}
	core := &corev1.EventList{}
	if err := k8s.List(ctx, core, client.InNamespace(ns)); err == nil {
		for _, e := range core.Items {
			if e.Reason == reason && e.InvolvedObject.Name == name {
				return true
			}
		}
	}
	return false
}

func polRetry(maxAttempts int32) *cardsv1alpha1.RetryPolicy {
	return &cardsv1alpha1.RetryPolicy{MaxAttempts: maxAttempts, MinBackoff: &metav1.Duration{Duration: 50 * time.Millisecond},
		MaxBackoff: &metav1.Duration{Duration: 200 * time.Millisecond}}
}

func TestCardEventSinkPolicy(t *testing.T) {
	t.Run("Backfill", polBackfill)
	t.Run("DeadLetters", polDeadLetters)
	t.Run("Replay", polReplay)
	t.Run("SecretRotation", polSecretRotation)
	t.Run("BadConfiguration", polBadConfiguration)
	t.Run("APIRefusals", polAPIRefusals)
	t.Run("AuthorizationDecided", polAuthorizationDecided)
	t.Run("Status", polStatus)
}

// polBackfill: cards existing before the sinks; backfill=true gets their current states, backfill=false only
// later changes.
func polBackfill(t *testing.T) {
	t.Parallel()
	ns := polSetup(t)
	observeAt(t, ns, "old1", cardsv1alpha1.CardActive, time.Time{})
	observeAt(t, ns, "old1", cardsv1alpha1.CardFrozen, time.Time{}) // state 2 is the current one
	observeAt(t, ns, "old2", cardsv1alpha1.CardActive, time.Time{})
	startManager(t, ns)
	withBackfill, without := polNewServer(t), polNewServer(t)
	polCreateSink(t, ns, "backfill", cardsv1alpha1.CardEventSinkSpec{Sink: polWebhook(withBackfill.URL), Backfill: true})
	waitFor(t, "the backfill sink gets the current states", func() bool {
		return len(withBackfill.of("old1")) == 1 && len(withBackfill.of("old2")) == 1
	}, polDump(t, ns, "backfill"))
	// Created once the dispatcher has listed the cards: a sink created while it starts takes, as new, every
	// card written after the sink (the card reconciler's first conditions, say), its state unchanged.
	polCreateSink(t, ns, "later", cardsv1alpha1.CardEventSinkSpec{Sink: polWebhook(without.URL)})
	if r := withBackfill.of("old1")[0]; r.Seq != 2 || r.Phase != "Frozen" || r.Type != "card.updated" {
		t.Errorf("backfilled old1 = %+v, want its current state 2 Frozen as card.updated", r)
	}
	waitFor(t, "both sinks Ready", func() bool {
		a, b := polReady(polGetSink(t, ns, "backfill")), polReady(polGetSink(t, ns, "later"))
		return a != nil && a.Status == metav1.ConditionTrue && b != nil && b.Status == metav1.ConditionTrue
	})

	observeAt(t, ns, "old2", cardsv1alpha1.CardFrozen, time.Time{})
	observeAt(t, ns, "new", cardsv1alpha1.CardActive, time.Time{})
	waitFor(t, "later changes delivered to both", func() bool {
		return len(without.of("old2")) == 1 && len(without.of("new")) == 1 && len(withBackfill.of("old2")) == 2 && len(withBackfill.of("new")) == 1
	}, polDump(t, ns, "later"), polDump(t, ns, "backfill"), func() {
		t.Logf("backfill sink got %+v; the other %+v", polBrief(withBackfill.all()), polBrief(without.all()))
	})
	time.Sleep(time.Second)
	if got := without.of("old1"); len(got) != 0 {
		t.Errorf("the sink without backfill got the state of a card unchanged since it was created: %+v", got)
	}
	if got := without.of("old2"); len(got) != 1 || got[0].Seq != 2 {
		t.Errorf("the sink without backfill got old2 %+v, want only its later state 2", got)
	}
	if got := withBackfill.of("old1"); len(got) != 1 {
		t.Errorf("the backfill sink got old1 %d times, want once: %+v", len(got), got)
	}
}

// polDeadLetters: a 400 is dead-lettered at once, a 500 after maxAttempts; both are listed, sent to the
// dead-letter sink and recorded as Warning Events; the resend annotation delivers them once the sink is fixed.
func polDeadLetters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := polSetup(t)
	srv, dlq := polNewServer(t), polNewServer(t)
	srv.answer("bad", http.StatusBadRequest, 0)
	srv.answer("flaky", http.StatusInternalServerError, 0)
	dlqSpec := polWebhook(dlq.URL)
	polCreateSink(t, ns, "dl", cardsv1alpha1.CardEventSinkSpec{Sink: polWebhook(srv.URL),
		Delivery: &cardsv1alpha1.DeliveryPolicy{Retry: polRetry(3), DeadLetterSink: &dlqSpec}})
	startManager(t, ns)
	waitFor(t, "the sink Ready", func() bool {
		c := polReady(polGetSink(t, ns, "dl"))
		return c != nil && c.Status == metav1.ConditionTrue
	}, polDump(t, ns, "dl"))
	bad := observeAt(t, ns, "bad", cardsv1alpha1.CardActive, time.Time{})
	flaky := observeAt(t, ns, "flaky", cardsv1alpha1.CardActive, time.Time{})
	observeAt(t, ns, "good", cardsv1alpha1.CardActive, time.Time{})
	waitFor(t, "the good card delivered", func() bool { return len(srv.of("good")) == 1 })

	var cs *cardsv1alpha1.CardEventSink
	waitFor(t, "two dead letters in status", func() bool {
		cs = polGetSink(t, ns, "dl")
		return len(cs.Status.DeadLetters) == 2
	}, polDump(t, ns, "dl"))
	letters := map[string]cardsv1alpha1.DeadLetter{}
	for _, dl := range cs.Status.DeadLetters {
		letters[dl.Name] = dl
	}
	// A permanent error is given up at the first attempt, and the dead letter says so. Known bug: the queue
	// raises the count to maxAttempts before the target hears of it (internal/projection/queue.go failed()),
	// so attempts reads 3; that expectation is checked at the end and skips the subtest, the rest still runs.
	attemptsBug := ""
	if dl := letters["bad"]; !strings.Contains(dl.Reason, "400") || dl.Kind != "Card" ||
		dl.EventID != fmt.Sprintf("%s-1", bad.UID) || dl.StateSequence != 1 || dl.DeadLetterSink != "Delivered" || dl.Time.IsZero() {
		t.Errorf("dead letter of the 400 = %+v, want a reason naming 400, event %s-1, dead-letter sink Delivered", dl, bad.UID)
	} else if dl.Attempts != 1 {
		attemptsBug = fmt.Sprintf("status.deadLetters attempts %d for a 400 answered at the first attempt; ", dl.Attempts)
	}
	if dl := letters["flaky"]; dl.Attempts != 3 || !strings.Contains(dl.Reason, "500") || dl.EventID != fmt.Sprintf("%s-1", flaky.UID) ||
		dl.DeadLetterSink != "Delivered" {
		t.Errorf("dead letter of the 500 = %+v, want attempts 3 (maxAttempts), a reason naming 500, dead-letter sink Delivered", dl)
	}
	if cs.Status.DeadLettered != 2 {
		t.Errorf("status.deadLettered = %d, want 2", cs.Status.DeadLettered)
	}

	// The dead-letter sink got both, typed dead_letter, with the reason and attempts.
	waitFor(t, "both on the dead-letter sink", func() bool { return len(dlq.of("bad")) == 1 && len(dlq.of("flaky")) == 1 })
	for name, attempts := range map[string]int32{"bad": 1, "flaky": 3} {
		r := dlq.of(name)[0]
		var body struct {
			CardEventSink string          `json:"cardEventSink"`
			Type          string          `json:"type"`
			Reason        string          `json:"reason"`
			Attempts      int32           `json:"attempts"`
			Data          json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(r.Data, &body); err != nil {
			t.Fatal(err)
		}
		if r.Type != "dead_letter" || body.CardEventSink != ns+"/dl" || body.Type != "card.updated" ||
			body.Reason == "" || r.Seq != 1 || r.ID != letters[name].EventID || !strings.Contains(string(body.Data), `"name":"`+name+`"`) {
			t.Errorf("dead-letter delivery of %s = id %s type %s seq %d, body %s; want type dead_letter, cardEventSink %s/dl, type card.updated, id %s, the object as data",
				name, r.ID, r.Type, r.Seq, r.Data, ns, letters[name].EventID)
		}
		if body.Attempts != attempts {
			if name == "bad" {
				attemptsBug += fmt.Sprintf("the dead-letter event says attempts %d; ", body.Attempts)
			} else {
				t.Errorf("dead-letter event of %s: attempts %d, want %d", name, body.Attempts, attempts)
			}
		}
	}
	waitFor(t, "a DeadLettered Warning Event on the sink", func() bool { return polEvent(t, ns, "DeadLettered", "dl") })
	evs := &eventsv1.EventList{}
	_ = k8s.List(ctx, evs, client.InNamespace(ns))
	for _, e := range evs.Items {
		if e.Reason == "DeadLettered" && e.Type != corev1.EventTypeWarning {
			t.Errorf("DeadLettered Event of type %s, want Warning", e.Type)
		}
	}
	if n := len(srv.of("bad")) + len(srv.of("flaky")); n != 0 {
		t.Fatalf("the failing cards were recorded as delivered: %d", n)
	}

	// Fixed; resend.
	srv.answer("bad", 0, 0)
	srv.answer("flaky", 0, 0)
	polAnnotate(t, ns, "dl", cardsv1alpha1.AnnotationResendDeadLetters, "now")
	waitFor(t, "the dead letters resent", func() bool { return len(srv.of("bad")) == 1 && len(srv.of("flaky")) == 1 }, polDump(t, ns, "dl"))
	if r := srv.of("bad")[0]; r.ID != fmt.Sprintf("%s-1", bad.UID) || r.Seq != 1 {
		t.Errorf("resent bad = %+v, want the dead-lettered state %s-1", r, bad.UID)
	}
	waitFor(t, "status.deadLetters empty and the annotation removed", func() bool {
		cs = polGetSink(t, ns, "dl")
		_, annotated := cs.Annotations[cardsv1alpha1.AnnotationResendDeadLetters]
		return !annotated && len(cs.Status.DeadLetters) == 0
	}, polDump(t, ns, "dl"))
	time.Sleep(time.Second)
	if n := len(srv.of("bad")); n != 1 {
		t.Errorf("the resent state was delivered %d times, want once", n)
	}
	if n := len(dlq.all()); n != 2 {
		t.Errorf("the dead-letter sink got %d events, want 2", n)
	}
	if attemptsBug != "" {
		t.Error("a permanent error's dead letter reports the wrong attempts: " + attemptsBug)
	}
}

// polReplay: replay-from delivers again, for that sink only, the current state of every object received at or
// after the time, with the same event ID; a bad value is refused with a Warning Event.
func polReplay(t *testing.T) {
	t.Parallel()
	ns := polSetup(t)
	srv, other := polNewServer(t), polNewServer(t)
	polCreateSink(t, ns, "rp", cardsv1alpha1.CardEventSinkSpec{Sink: polWebhook(srv.URL)})
	polCreateSink(t, ns, "other", cardsv1alpha1.CardEventSinkSpec{Sink: polWebhook(other.URL)})
	startManager(t, ns)
	waitFor(t, "the sinks Ready", func() bool {
		a, b := polReady(polGetSink(t, ns, "rp")), polReady(polGetSink(t, ns, "other"))
		return a != nil && a.Status == metav1.ConditionTrue && b != nil && b.Status == metav1.ConditionTrue
	})
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second).UTC()
	observeAt(t, ns, "at", cardsv1alpha1.CardActive, t0)                        // received exactly at the replay time
	observeAt(t, ns, "after", cardsv1alpha1.CardActive, t0.Add(10*time.Second)) // after it
	observeAt(t, ns, "before", cardsv1alpha1.CardActive, t0.Add(-time.Hour))    // before it: not replayed
	observeAt(t, ns, "unknown", cardsv1alpha1.CardActive, time.Time{})          // no receivedAt: not replayed (observedAt is zero)
	names := []string{"at", "after", "before", "unknown"}
	waitFor(t, "first deliveries", func() bool {
		for _, n := range names {
			if len(srv.of(n)) != 1 || len(other.of(n)) != 1 {
				return false
			}
		}
		return true
	})
	if r := srv.of("after")[0]; r.Type != "card.updated" {
		t.Errorf("delivered %+v", r)
	}

	polAnnotate(t, ns, "rp", cardsv1alpha1.AnnotationReplayFrom, t0.Format(time.RFC3339))
	waitFor(t, "replayed", func() bool { return len(srv.of("at")) == 2 && len(srv.of("after")) == 2 }, polDump(t, ns, "rp"))
	for _, n := range []string{"at", "after"} {
		got := srv.of(n)
		if got[0].ID != got[1].ID || got[1].Seq != 1 {
			t.Errorf("replay of %s = %+v, want the same event (ID %s) again", n, got[1], got[0].ID)
		}
	}
	var cs *cardsv1alpha1.CardEventSink
	waitFor(t, "status.replay and the annotation removed", func() bool {
		cs = polGetSink(t, ns, "rp")
		_, annotated := cs.Annotations[cardsv1alpha1.AnnotationReplayFrom]
		return !annotated && cs.Status.Replay != nil
	}, polDump(t, ns, "rp"))
	if r := cs.Status.Replay; r.Queued != 2 || !r.From.Time.Equal(t0) || r.Time.IsZero() {
		t.Errorf("status.replay = %+v, want queued 2 from %s", r, t0)
	}
	time.Sleep(time.Second)
	for _, n := range []string{"before", "unknown"} {
		if got := srv.of(n); len(got) != 1 {
			t.Errorf("%s (received before the replay time, or not known) was delivered %d times, want once", n, len(got))
		}
	}
	for _, n := range names {
		if got := other.of(n); len(got) != 1 {
			t.Errorf("the other sink got %s %d times: a replay is for its sink only", n, len(got))
		}
	}
	if n := len(srv.of("at")); n != 2 {
		t.Errorf("at delivered %d times after the replay, want 2", n)
	}

	// An unparsable value: removed, a Warning Event, nothing sent, status.replay unchanged.
	polAnnotate(t, ns, "rp", cardsv1alpha1.AnnotationReplayFrom, "yesterday")
	waitFor(t, "a ReplayRefused Event", func() bool { return polEvent(t, ns, "ReplayRefused", "rp") })
	waitFor(t, "the bad annotation removed", func() bool {
		_, annotated := polGetSink(t, ns, "rp").Annotations[cardsv1alpha1.AnnotationReplayFrom]
		return !annotated
	}, polDump(t, ns, "rp"))
	time.Sleep(500 * time.Millisecond)
	if n := len(srv.all()); n != 6 {
		t.Errorf("%d deliveries after the refused replay, want 6", n)
	}
	if r := polGetSink(t, ns, "rp").Status.Replay; r == nil || r.Queued != 2 || !r.From.Time.Equal(t0) {
		t.Errorf("status.replay after a refused replay = %+v, want the last one kept", r)
	}
}

// polSecretRotation: a changed bearer token Secret is picked up without restarting.
func polSecretRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := polSetup(t)
	polSecret(t, ns, "poltoken", true, map[string]string{"token": "first-token"})
	srv := polNewServer(t)
	spec := polWebhook(srv.URL)
	spec.Webhook.HTTP = &cardsv1alpha1.HTTPSinkOptions{BearerTokenSecretRef: &cardsv1alpha1.SecretKeyReference{Name: "poltoken", Key: "token"}}
	polCreateSink(t, ns, "rot", cardsv1alpha1.CardEventSinkSpec{Sink: spec})
	startManager(t, ns)
	waitFor(t, "Ready", func() bool {
		c := polReady(polGetSink(t, ns, "rot"))
		return c != nil && c.Status == metav1.ConditionTrue
	}, polDump(t, ns, "rot"))
	observeAt(t, ns, "c1", cardsv1alpha1.CardActive, time.Time{})
	waitFor(t, "first delivery", func() bool { return len(srv.of("c1")) == 1 })
	if a := srv.of("c1")[0].Auth; a != "Bearer first-token" {
		t.Fatalf("Authorization = %q, want Bearer first-token", a)
	}

	sec := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "poltoken"}, sec); err != nil {
		t.Fatal(err)
	}
	sec.Data = map[string][]byte{"token": []byte("second-token\n")} // the newline of `echo` is dropped
	if err := k8s.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	// States keep coming; once one carries the new token, every later one does.
	deadline := time.Now().Add(30 * time.Second)
	rotated := false
	for phase := cardsv1alpha1.CardFrozen; !rotated; {
		if time.Now().After(deadline) {
			t.Fatalf("no delivery carried the new token: %+v", srv.of("c1"))
		}
		n := len(srv.of("c1"))
		observeAt(t, ns, "c1", phase, time.Time{})
		waitFor(t, "the next state delivered", func() bool { return len(srv.of("c1")) == n+1 })
		rotated = srv.of("c1")[n].Auth == "Bearer second-token"
		if phase == cardsv1alpha1.CardFrozen {
			phase = cardsv1alpha1.CardActive
		} else {
			phase = cardsv1alpha1.CardFrozen
		}
		time.Sleep(200 * time.Millisecond)
	}
	n := len(srv.of("c1"))
	observeAt(t, ns, "c2", cardsv1alpha1.CardActive, time.Time{})
	waitFor(t, "a later delivery", func() bool { return len(srv.of("c2")) == 1 })
	if a := srv.of("c2")[0].Auth; a != "Bearer second-token" {
		t.Errorf("a delivery after the rotation carried %q", a)
	}
	for i, r := range srv.all() {
		if r.Auth != "Bearer first-token" && r.Auth != "Bearer second-token" {
			t.Errorf("delivery %d carried Authorization %q", i, r.Auth)
		}
	}
	t.Logf("the rotated token was in use by delivery %d", n)
	if c := polReady(polGetSink(t, ns, "rot")); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready after the rotation = %+v", c)
	}
}

// polBadConfiguration: a filter that does not compile, a good sink updated with a bad one, a missing Secret.
func polBadConfiguration(t *testing.T) {
	t.Parallel()
	ns := polSetup(t)
	never, good, missing := polNewServer(t), polNewServer(t), polNewServer(t)
	startManager(t, ns)

	// A sink that was never good: Ready=False InvalidFilter, its states wait.
	polCreateSink(t, ns, "never", cardsv1alpha1.CardEventSinkSpec{Sink: polWebhook(never.URL), Filter: `object.status.phase ==`})
	// A good sink, Active cards only.
	polCreateSink(t, ns, "good", cardsv1alpha1.CardEventSinkSpec{Sink: polWebhook(good.URL), Filter: `object.status.phase == "Active"`})
	// A sink naming a Secret that does not exist, and one naming an unlabelled Secret.
	noSecret := polWebhook(missing.URL)
	noSecret.Webhook.SecretRef.Name = "absent"
	polCreateSink(t, ns, "nosecret", cardsv1alpha1.CardEventSinkSpec{Sink: noSecret})
	polSecret(t, ns, "unlabelled", false, map[string]string{cardsv1alpha1.SecretKeyDestinationSecret: destinationSecret})
	unlabelled := polWebhook(missing.URL)
	unlabelled.Webhook.SecretRef.Name = "unlabelled"
	polCreateSink(t, ns, "unlabelled", cardsv1alpha1.CardEventSinkSpec{Sink: unlabelled})

	waitFor(t, "never: Ready=False InvalidFilter", func() bool {
		c := polReady(polGetSink(t, ns, "never"))
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "InvalidFilter"
	}, polDump(t, ns, "never"))
	if c := polReady(polGetSink(t, ns, "never")); strings.Contains(c.Message, "stays in force") || !strings.Contains(c.Message, "filter") {
		t.Errorf("never: Ready message %q: want the compile error, and no configuration in force", c.Message)
	}
	waitFor(t, "good: Ready", func() bool {
		c := polReady(polGetSink(t, ns, "good"))
		return c != nil && c.Status == metav1.ConditionTrue
	}, polDump(t, ns, "good"))
	waitFor(t, "nosecret: Ready=False SecretNotFound", func() bool {
		c := polReady(polGetSink(t, ns, "nosecret"))
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == cardsv1alpha1.ReasonSecretNotFound
	}, polDump(t, ns, "nosecret"))
	waitFor(t, "unlabelled: Ready=False SecretNotLabelled", func() bool {
		c := polReady(polGetSink(t, ns, "unlabelled"))
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == cardsv1alpha1.ReasonSecretNotLabelled
	}, polDump(t, ns, "unlabelled"))

	observeAt(t, ns, "w1", cardsv1alpha1.CardActive, time.Time{})
	waitFor(t, "the good sink delivers w1", func() bool { return len(good.of("w1")) == 1 })
	time.Sleep(time.Second)
	if n := len(never.all()) + len(missing.all()); n != 0 {
		t.Fatalf("a sink that is not Ready delivered %d states", n)
	}

	// Fixed: Ready, and the waiting state is delivered.
	polPatchSink(t, ns, "never", func(cs *cardsv1alpha1.CardEventSink) { cs.Spec.Filter = `object.status.phase == "Active"` })
	waitFor(t, "never fixed: Ready=True", func() bool {
		cs := polGetSink(t, ns, "never")
		c := polReady(cs)
		return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == cs.Generation
	}, polDump(t, ns, "never"))
	waitFor(t, "the waiting state delivered", func() bool { return len(never.of("w1")) == 1 }, polDump(t, ns, "never"))
	// The Secret created: the sink that named it becomes Ready and delivers what waited.
	polSecret(t, ns, "absent", true, map[string]string{cardsv1alpha1.SecretKeyDestinationSecret: destinationSecret})
	waitFor(t, "nosecret Ready once the Secret exists", func() bool {
		c := polReady(polGetSink(t, ns, "nosecret"))
		return c != nil && c.Status == metav1.ConditionTrue
	}, polDump(t, ns, "nosecret"))
	waitFor(t, "nosecret delivers the waiting state", func() bool { return len(missing.of("w1")) >= 1 }, polDump(t, ns, "nosecret"))

	// A good sink given a bad filter: the old configuration stays in force.
	polPatchSink(t, ns, "good", func(cs *cardsv1alpha1.CardEventSink) { cs.Spec.Filter = `object.status.phase == ` })
	waitFor(t, "good: Ready=False, the last good generation in force", func() bool {
		cs := polGetSink(t, ns, "good")
		c := polReady(cs)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "InvalidFilter" &&
			strings.Contains(c.Message, "stays in force") && c.ObservedGeneration == cs.Generation
	}, polDump(t, ns, "good"))
	observeAt(t, ns, "w2", cardsv1alpha1.CardActive, time.Time{})
	observeAt(t, ns, "w3", cardsv1alpha1.CardFrozen, time.Time{})
	waitFor(t, "deliveries continue under the old filter", func() bool { return len(good.of("w2")) == 1 }, polDump(t, ns, "good"))
	time.Sleep(time.Second)
	if got := good.of("w3"); len(got) != 0 {
		t.Errorf("a Frozen card passed the filter in force (phase == Active): %+v", got)
	}
}

// polAPIRefusals: the API server refuses what the CRD forbids, and there is no field naming another namespace.
func polAPIRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t)
	strict := client.WithFieldValidation(k8s, metav1.FieldValidationStrict)
	webhook := map[string]any{"url": "https://sink.example.com/hooks", "secretRef": map[string]any{"name": "polsig"}}
	kafka := map[string]any{"brokers": []any{"kafka.example.com:9092"}, "topic": "cards"}
	mk := func(name string, spec map[string]any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": cardsv1alpha1.GroupVersion.String(), "kind": "CardEventSink",
			"metadata": map[string]any{"namespace": ns, "name": name}, "spec": spec}}
		return u
	}
	// The base case is accepted, strictly: the refusals below are the fields', nothing else's.
	if err := strict.Create(ctx, mk("ok", map[string]any{"sink": map[string]any{"webhook": webhook}}), client.DryRunAll); err != nil {
		t.Fatalf("a valid sink refused: %v", err)
	}
	cases := []struct {
		name string
		spec map[string]any
		want string
	}{
		{"two-transports", map[string]any{"sink": map[string]any{"webhook": webhook, "kafka": kafka}}, "set exactly one of webhook, cloudEvents, kafka, nats"},
		{"no-transport", map[string]any{"sink": map[string]any{}}, "set exactly one of webhook, cloudEvents, kafka, nats"},
		{"no-sink", map[string]any{"backfill": true}, "spec.sink: Required value"},
		{"otp-kafka", map[string]any{"eventTypes": []any{"challenge.otp"}, "sink": map[string]any{"kafka": kafka}},
			"challenge.otp (one-time codes) is delivered only to webhook and cloudEvents sinks"},
		{"otp-nats", map[string]any{"eventTypes": []any{"card.updated", "challenge.otp"}, "sink": map[string]any{"nats": map[string]any{
			"urls": []any{"nats://nats.example.com:4222"}, "subjectPrefix": "cards"}}},
			"challenge.otp (one-time codes) is delivered only to webhook and cloudEvents sinks"},
		{"unknown-event", map[string]any{"eventTypes": []any{"card.deleted"}, "sink": map[string]any{"webhook": webhook}}, `Unsupported value: "card.deleted"`},
		{"namespace", map[string]any{"namespace": "other", "sink": map[string]any{"webhook": webhook}}, `unknown field "spec.namespace"`},
		{"selector-namespace", map[string]any{"selector": map[string]any{"namespace": "other"}, "sink": map[string]any{"webhook": webhook}},
			`unknown field "spec.selector.namespace"`},
		{"namespaceSelector", map[string]any{"namespaceSelector": map[string]any{}, "sink": map[string]any{"webhook": webhook}},
			`unknown field "spec.namespaceSelector"`},
		{"secret-namespace", map[string]any{"sink": map[string]any{"webhook": map[string]any{"url": "https://sink.example.com/hooks",
			"secretRef": map[string]any{"name": "polsig", "namespace": "other"}}}}, `unknown field "spec.sink.webhook.secretRef.namespace"`},
		{"token-namespace", map[string]any{"sink": map[string]any{"webhook": map[string]any{"url": "https://sink.example.com/hooks",
			"secretRef": map[string]any{"name": "polsig"}, "http": map[string]any{"bearerTokenSecretRef": map[string]any{"name": "t", "key": "k", "namespace": "other"}}}}},
			`unknown field "spec.sink.webhook.http.bearerTokenSecretRef.namespace"`},
		{"bad-url", map[string]any{"sink": map[string]any{"webhook": map[string]any{"url": "ftp://sink.example.com", "secretRef": map[string]any{"name": "polsig"}}}},
			"url must be an http or https URL"},
	}
	for _, c := range cases {
		err := strict.Create(ctx, mk(c.name, c.spec), client.DryRunAll)
		switch {
		case err == nil:
			t.Errorf("%s: accepted, want refused with %q", c.name, c.want)
		case !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err):
			t.Errorf("%s: %v, want a validation refusal", c.name, err)
		case !strings.Contains(err.Error(), c.want):
			t.Errorf("%s: refused with %q, want the message %q", c.name, err, c.want)
		}
	}
	// Typed: two transports.
	two := &cardsv1alpha1.CardEventSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "typed-two"},
		Spec: cardsv1alpha1.CardEventSinkSpec{Sink: cardsv1alpha1.SinkSpec{
			Webhook: &cardsv1alpha1.WebhookSink{URL: "https://sink.example.com/hooks", SecretRef: cardsv1alpha1.LocalObjectReference{Name: "polsig"}},
			NATS:    &cardsv1alpha1.NATSSink{URLs: []string{"nats://n:4222"}, SubjectPrefix: "cards"}}}}
	if err := k8s.Create(ctx, two, client.DryRunAll); err == nil || !strings.Contains(err.Error(), "set exactly one of") {
		t.Errorf("typed sink with two transports: %v, want refused", err)
	}
	// Without strict validation a namespace field is dropped, never stored: nothing can name another namespace.
	u := mk("pruned", map[string]any{"namespace": "other", "selector": map[string]any{"namespace": "other"}, "sink": map[string]any{"webhook": webhook}})
	if err := k8s.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(cardsv1alpha1.GroupVersion.WithKind("CardEventSink"))
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pruned"}, got); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(got.Object, "spec", "namespace"); found {
		t.Errorf("spec.namespace was stored: %v", got.Object["spec"])
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(got.Object, "spec", "selector", "namespace"); found {
		t.Errorf("spec.selector.namespace was stored: %v", got.Object["spec"])
	}
}

// polAuthorizationDecided: a transaction carrying the operator's decision is typed authorization.decided for a
// sink that lists it; one without is not delivered to a sink that lists only authorization.decided.
func polAuthorizationDecided(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := polSetup(t)
	only, both := polNewServer(t), polNewServer(t)
	err := k8s.Create(ctx, &cardsv1alpha1.CardEventSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "decisions"},
		Spec: cardsv1alpha1.CardEventSinkSpec{Sink: polWebhook(only.URL),
			EventTypes: []cardsv1alpha1.DestinationEventType{cardsv1alpha1.EventAuthorizationDecided}}})
	if err != nil {
		t.Fatal(err)
	}
	polCreateSink(t, ns, "both", cardsv1alpha1.CardEventSinkSpec{Sink: polWebhook(both.URL),
		EventTypes: []cardsv1alpha1.DestinationEventType{cardsv1alpha1.EventTransactionUpdated, cardsv1alpha1.EventAuthorizationDecided}})
	startManager(t, ns)
	waitFor(t, "the sinks Ready", func() bool {
		a, b := polReady(polGetSink(t, ns, "decisions")), polReady(polGetSink(t, ns, "both"))
		return a != nil && a.Status == metav1.ConditionTrue && b != nil && b.Status == metav1.ConditionTrue
	})
	observeAt(t, ns, "card", cardsv1alpha1.CardActive, time.Time{})
	mk := func(name string, decided bool) *cardsv1alpha1.CardTransaction {
		txn := &cardsv1alpha1.CardTransaction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: cardsv1alpha1.CardTransactionSpec{CardRef: cardsv1alpha1.LocalObjectReference{Name: "card"},
				Provider: cardsv1alpha1.ProviderAlchemyPay, ProviderTransactionID: name}}
		if err := k8s.Create(ctx, txn); err != nil {
			t.Fatal(err)
		}
		b := txn.DeepCopy()
		txn.Status.Phase, txn.Status.StateSequence = cardsv1alpha1.TransactionPending, 1
		txn.Status.Direction, txn.Status.Amount = cardsv1alpha1.Debit, &cardsv1alpha1.Money{Value: "12.00", Currency: "USD"}
		if decided {
			now := metav1.Now()
			txn.Status.Authorization = &cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionApproved},
				RuleSetVersion: ns + "/rules@1", DecidedAt: &now}
		}
		if err := k8s.Status().Patch(ctx, txn, client.MergeFrom(b)); err != nil {
			t.Fatal(err)
		}
		return txn
	}
	decided := mk("decided", true)
	mk("plain", false)
	waitFor(t, "the decision delivered to both", func() bool { return len(only.of("decided")) == 1 && len(both.of("decided")) == 1 })
	waitFor(t, "the plain transaction delivered to the sink listing transaction.updated", func() bool { return len(both.of("plain")) == 1 })
	time.Sleep(time.Second)
	for _, s := range []*polServer{only, both} {
		if r := s.of("decided")[0]; r.Type != string(cardsv1alpha1.EventAuthorizationDecided) || r.ID != fmt.Sprintf("%s-1", decided.UID) {
			t.Errorf("decided delivered as %+v, want type authorization.decided, id %s-1", r, decided.UID)
		} else {
			var data struct {
				Status struct {
					Authorization *struct{ Outcome string } `json:"authorization"`
				} `json:"status"`
			}
			_ = json.Unmarshal(r.Data, &data)
			if data.Status.Authorization == nil || data.Status.Authorization.Outcome != "Approved" {
				t.Errorf("decided delivered without status.authorization: %s", r.Data)
			}
		}
	}
	if r := both.of("plain"); len(r) != 1 || r[0].Type != string(cardsv1alpha1.EventTransactionUpdated) {
		t.Errorf("plain delivered to the sink listing both as %+v, want transaction.updated", r)
	}
	if got := only.of("plain"); len(got) != 0 {
		t.Errorf("a transaction without a decision was delivered to the authorization.decided sink: %+v", got)
	}
	if got := only.of("card"); len(got) != 0 {
		t.Errorf("a card state was delivered to the authorization.decided sink: %+v", got)
	}
	if got := both.of("card"); len(got) != 0 {
		t.Errorf("a card state was delivered to a sink not listing card.updated: %+v", got)
	}
}

// polStatus: status after deliveries, and nothing sent once the sink is deleted.
func polStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := polSetup(t)
	srv, control := polNewServer(t), polNewServer(t)
	polCreateSink(t, ns, "st", cardsv1alpha1.CardEventSinkSpec{Sink: polWebhook(srv.URL)})
	polCreateSink(t, ns, "control", cardsv1alpha1.CardEventSinkSpec{Sink: polWebhook(control.URL)})
	startManager(t, ns)
	waitFor(t, "Ready", func() bool {
		c := polReady(polGetSink(t, ns, "st"))
		return c != nil && c.Status == metav1.ConditionTrue
	}, polDump(t, ns, "st"))
	observeAt(t, ns, "s1", cardsv1alpha1.CardActive, time.Time{})
	last := observeAt(t, ns, "s2", cardsv1alpha1.CardActive, time.Time{})
	waitFor(t, "delivered", func() bool { return len(srv.of("s1")) == 1 && len(srv.of("s2")) == 1 })
	rv, _ := strconv.ParseUint(last.ResourceVersion, 10, 64)
	var cs *cardsv1alpha1.CardEventSink
	waitFor(t, "status: Ready, delivered 2, checkpoint past s2, nothing pending", func() bool {
		cs = polGetSink(t, ns, "st")
		c := polReady(cs)
		if c == nil || c.Status != metav1.ConditionTrue || cs.Status.Delivered != 2 || cs.Status.Pending != 0 ||
			cs.Status.Checkpoint == nil || cs.Status.LastDeliveryTime == nil {
			return false
		}
		cp, _ := strconv.ParseUint(cs.Status.Checkpoint.Cards, 10, 64)
		return cp >= rv
	}, polDump(t, ns, "st"))
	if s := cs.Status; s.State != cardsv1alpha1.DestinationHealthy || s.ObservedGeneration != cs.Generation || s.Failed != 0 ||
		s.DeadLettered != 0 || s.LagSeconds != 0 || s.OldestPendingTime != nil || s.LastError != "" {
		b, _ := json.Marshal(s)
		t.Errorf("status = %s, want Healthy, observedGeneration %d, no failures, nothing pending", b, cs.Generation)
	}

	if err := k8s.Delete(ctx, cs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sink gone", func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "st"}, &cardsv1alpha1.CardEventSink{}))
	})
	time.Sleep(300 * time.Millisecond) // the informer hands the deletion on
	before := len(srv.all())
	observeAt(t, ns, "s1", cardsv1alpha1.CardFrozen, time.Time{})
	observeAt(t, ns, "s3", cardsv1alpha1.CardActive, time.Time{})
	waitFor(t, "the other sink still delivers", func() bool { return len(control.of("s1")) == 2 && len(control.of("s3")) == 1 })
	time.Sleep(time.Second)
	if got := srv.all(); len(got) != before {
		t.Errorf("a deleted sink was sent %d more states: %+v", len(got)-before, got[before:])
	}
}
