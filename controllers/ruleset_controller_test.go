package controllers_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/controllers"
	"github.com/cardplane/cardplane/internal/authz"
	"github.com/cardplane/cardplane/internal/rules"
)

const goodRules = `
rules:
- name: block-gambling
  reason: BLOCKED_MCC
  mcc: {block: ["7995"]}
`

// startRuleSets runs a RuleSetReconciler over namespace ns with its own store (a replica), until the test ends.
func startRuleSets(t *testing.T, ns string) *authz.Store {
	t.Helper()
	store := &authz.Store{}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  env.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}},
			ByObject: map[client.Object]cache.ByObject{&corev1.ConfigMap{}: {Label: controllers.RuleSetCache}}},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := (&controllers.RuleSetReconciler{Client: mgr.GetClient(), Store: store, Recorder: mgr.GetEventRecorder("cardplane-rules")}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = mgr.Start(mctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return store
}

func events(t *testing.T, ns, name, reason string) []string {
	t.Helper()
	list := &corev1.EventList{}
	if err := k8s.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Reason == reason && e.InvolvedObject.Name == name {
			out = append(out, e.Message)
		}
	}
	return out
}

// TestRuleSetsAreCompiledAndABadVersionKeepsTheLastGood: a valid rule set comes into force; an invalid
// version is reported (Event naming the line) and the last good version stays; removing the label takes it out
// of force, with an Event that says so.
func TestRuleSetsAreCompiledAndABadVersionKeepsTheLastGood(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	store := startRuleSets(t, ns)

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "card-rules",
		Labels: map[string]string{cardsv1alpha1.LabelRuleSet: "true"}}, Data: map[string]string{cardsv1alpha1.RuleSetKey: goodRules}}
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	var good string
	waitFor(t, "the rule set in force", func() bool {
		if rs := store.Get(ns, "card-rules"); rs != nil {
			good = rs.Version
		}
		return good != ""
	})
	// Its version is the ConfigMap's as created, or (when the InForce annotation was written before this
	// looked) as annotated: the annotation is adopted at the new resourceVersion.
	created, _ := strconv.ParseUint(cm.ResourceVersion, 10, 64)
	if at, ok := strings.CutPrefix(good, ns+"/card-rules@"); !ok {
		t.Errorf("version %q", good)
	} else if rv, err := strconv.ParseUint(at, 10, 64); err != nil || rv < created {
		t.Errorf("version %q, want the ConfigMap's %s or later", good, cm.ResourceVersion)
	}
	// The state is on the ConfigMap, where GitOps tools look; writing it changes neither the set nor its version.
	annotations := func() map[string]string {
		got := &corev1.ConfigMap{}
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(cm), got)
		return got.Annotations
	}
	waitFor(t, "the rule set annotated InForce", func() bool {
		return annotations()[cardsv1alpha1.AnnotationRuleSetState] == cardsv1alpha1.RuleSetInForce
	})
	// The annotation is a write of the ConfigMap: the same rules are then held at its current version.
	current := &corev1.ConfigMap{}
	_ = k8s.Get(ctx, client.ObjectKeyFromObject(cm), current)
	waitFor(t, "the rule set held at the ConfigMap's current version", func() bool {
		return store.Get(ns, "card-rules").Version == ns+"/card-rules@"+current.ResourceVersion
	})
	good = store.Get(ns, "card-rules").Version
	cm = current

	before := cm.DeepCopy()
	cm.Data[cardsv1alpha1.RuleSetKey] = goodRules + "- name: broken\n  reason: X\n  condition: \"transaction.amount >\"\n"
	if err := k8s.Patch(ctx, cm, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	var msg string
	waitFor(t, "a RuleSetInvalid Event", func() bool {
		if m := events(t, ns, "card-rules", cardsv1alpha1.EventRuleSetInvalid); len(m) > 0 {
			msg = m[0]
			return true
		}
		return false
	})
	if !strings.Contains(msg, "line 8") || !strings.Contains(msg, "broken") || !strings.Contains(msg, good+" stays in force") {
		t.Errorf("Event message %q should name the line, the rule and the version kept", msg)
	}
	waitFor(t, "the rule set annotated Invalid", func() bool {
		return annotations()[cardsv1alpha1.AnnotationRuleSetState] == cardsv1alpha1.RuleSetInvalid
	})
	if e := annotations()[cardsv1alpha1.AnnotationRuleSetError]; !strings.Contains(e, "line 8") || !strings.Contains(e, good+" stays in force") {
		t.Errorf("error annotation %q should name the line and the version kept", e)
	}
	time.Sleep(200 * time.Millisecond)
	if rs := store.Get(ns, "card-rules"); rs == nil || rs.Version != good {
		t.Fatalf("the invalid version replaced the last good one: %+v", rs)
	}
	if n := len(events(t, ns, "card-rules", cardsv1alpha1.EventRuleSetInvalid)); n != 1 {
		t.Errorf("%d RuleSetInvalid Events for one broken version, want 1 (the state annotation must not recompile it)", n)
	}

	before = cm.DeepCopy()
	delete(cm.Labels, cardsv1alpha1.LabelRuleSet)
	if err := k8s.Patch(ctx, cm, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unlabelled rule set out of force", func() bool { return store.Get(ns, "card-rules") == nil })
	waitFor(t, "a RuleSetRemoved Event", func() bool { return len(events(t, ns, "card-rules", cardsv1alpha1.EventRuleSetRemoved)) > 0 })
}

// TestABrokenRuleSetFailsClosedOnEveryReplica: a replica that starts while a labelled rule set does not compile
// (a restart, a rollout) holds it as invalid and the cards it selects are declined; it reports ready only after
// that first sync. (Before, such a replica had no version at all, and those cards were approved.)
func TestABrokenRuleSetFailsClosedOnEveryReplica(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	broken := "selector: {matchLabels: {team: growth}}\ndefaultDecision: approve\nrules:\n- name: x\n  reason: X\n  condition: 'transaction.('\n"
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "growth-rules",
		Labels: map[string]string{cardsv1alpha1.LabelRuleSet: "true"}}, Data: map[string]string{cardsv1alpha1.RuleSetKey: broken}}
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	store := startRuleSets(t, ns) // a replica started after the broken version was applied
	waitFor(t, "the first sync", store.Synced)
	good, invalid := store.For(ns, map[string]string{"team": "growth"})
	if len(good) != 0 || len(invalid) != 1 || !strings.HasPrefix(invalid[0].Version, ns+"/growth-rules@") {
		t.Fatalf("after the first sync: good %d, invalid %+v; want the broken set held as invalid", len(good), invalid)
	}
	// The state annotation is a write of the ConfigMap: the broken set is then held at its current version.
	waitFor(t, "the broken set held at the ConfigMap's current version", func() bool {
		current := &corev1.ConfigMap{}
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(cm), current)
		_, invalid := store.For(ns, map[string]string{"team": "growth"})
		return current.Annotations[cardsv1alpha1.AnnotationRuleSetState] == cardsv1alpha1.RuleSetInvalid &&
			len(invalid) == 1 && invalid[0].Version == ns+"/growth-rules@"+current.ResourceVersion
	})
	if _, invalid := store.For(ns, map[string]string{"team": "ops"}); len(invalid) != 0 {
		t.Errorf("the broken set governs cards its selector does not select: %+v", invalid)
	}
	a := &authz.Authorizer{Store: store, Client: k8s, APIReader: k8s, Now: time.Now}
	card := &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "c", Labels: map[string]string{"team": "growth"}}}
	if d := a.Decide(ctx, card, rules.Transaction{Amount: cardsv1alpha1.Money{Value: "1.00", Currency: "USD"}}); d.Outcome != cardsv1alpha1.DecisionDeclined ||
		d.Reason != cardsv1alpha1.DecisionRuleSetInvalid {
		t.Errorf("a card of the broken set: %+v, want declined RULE_SET_INVALID", d)
	}

	// Deleting the ConfigMap is a visible change too.
	if err := k8s.Delete(ctx, cm); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a RuleSetRemoved Event", func() bool { return len(events(t, ns, "growth-rules", cardsv1alpha1.EventRuleSetRemoved)) > 0 })
	if _, invalid := store.For(ns, map[string]string{"team": "growth"}); len(invalid) != 0 {
		t.Errorf("the deleted set still governs: %+v", invalid)
	}
}
