package controllers_test

import (
	"context"
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
)

const goodRules = `
rules:
- name: block-gambling
  reason: BLOCKED_MCC
  mcc: {block: ["7995"]}
`

// TestRuleSetsAreCompiledAndABadVersionKeepsTheLastGood: a valid rule set comes into force; an invalid
// version is reported (Event naming the line) and the last good version stays; removing the label or the
// ConfigMap takes it out of force.
func TestRuleSetsAreCompiledAndABadVersionKeepsTheLastGood(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
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
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = mgr.Start(mctx) }()

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "card-rules",
		Labels: map[string]string{cardsv1alpha1.LabelRuleSet: "true"}}, Data: map[string]string{cardsv1alpha1.RuleSetKey: goodRules}}
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rule set in force", func() bool { return store.Get(ns, "card-rules") != nil })
	good := store.Get(ns, "card-rules").Version
	if good != ns+"/card-rules@"+cm.ResourceVersion {
		t.Errorf("version %q", good)
	}

	before := cm.DeepCopy()
	cm.Data[cardsv1alpha1.RuleSetKey] = goodRules + "- name: broken\n  reason: X\n  condition: \"transaction.amount >\"\n"
	if err := k8s.Patch(ctx, cm, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	var msg string
	waitFor(t, "a RuleSetInvalid Event", func() bool {
		list := &corev1.EventList{}
		_ = k8s.List(ctx, list, client.InNamespace(ns))
		for _, e := range list.Items {
			if e.Reason == "RuleSetInvalid" && e.InvolvedObject.Name == "card-rules" {
				msg = e.Message
				return true
			}
		}
		return false
	})
	if !strings.Contains(msg, "line 8") || !strings.Contains(msg, "broken") || !strings.Contains(msg, good+" stays in force") {
		t.Errorf("Event message %q should name the line, the rule and the version kept", msg)
	}
	time.Sleep(200 * time.Millisecond)
	if rs := store.Get(ns, "card-rules"); rs == nil || rs.Version != good {
		t.Fatalf("the invalid version replaced the last good one: %+v", rs)
	}

	before = cm.DeepCopy()
	delete(cm.Labels, cardsv1alpha1.LabelRuleSet)
	if err := k8s.Patch(ctx, cm, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unlabelled rule set out of force", func() bool { return store.Get(ns, "card-rules") == nil })
}
