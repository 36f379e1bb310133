package controllers

import (
	"context"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/authz"
	"github.com/cardplane/cardplane/internal/rules"
	"github.com/cardplane/cardplane/internal/text"
)

var (
	ruleSetValid = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cardplane_rule_set_valid",
		Help: "1 when the rule set's current ConfigMap compiled and is in force, 0 when it does not compile (the last good version stays in force, or, without one, the cards it governs are declined).",
	}, []string{"rule_set_namespace", "rule_set"})
	ruleSetErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cardplane_rule_set_errors_total",
		Help: "Rule set versions that failed to compile.",
	}, []string{"rule_set_namespace", "rule_set"})
	ruleSetsRemoved = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cardplane_rule_sets_removed_total",
		Help: "Rule sets taken out of force because their ConfigMap was deleted or lost its label.",
	}, []string{"rule_set_namespace", "rule_set"})
)

func init() { metrics.Registry.MustRegister(ruleSetValid, ruleSetErrors, ruleSetsRemoved) }

// RuleSetReconciler compiles rule-set ConfigMaps and swaps them into the Store. A version that fails to compile
// never replaces the last good one; without a good one, the cards it would govern are declined. Either way it
// is reported with an Event naming the line and rule, a metric and a log line. Removing a rule set is reported
// too: its cards fall to the other sets, or to the ungoverned decision (decline unless configured). It runs on
// every replica, because every replica answers authorizations.
type RuleSetReconciler struct {
	client.Client
	Store    *authz.Store
	Recorder events.EventRecorder

	// compiled remembers, per ConfigMap, what was last compiled (its rules.yaml and revision) and at which
	// version: a write that changes neither (the state annotations this reconciler writes, another label) is
	// adopted quietly, so the version in force stays the ConfigMap's current one without a second report or
	// another annotation write.
	compiled sync.Map // types.NamespacedName -> compiledAt
}

// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;patch

// Reconcile compiles one rule set.
func (r *RuleSetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, req.NamespacedName, cm); err != nil {
		if client.IgnoreNotFound(err) == nil {
			r.remove(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if cm.Labels[cardsv1alpha1.LabelRuleSet] != "true" || cm.DeletionTimestamp != nil {
		r.remove(cm.Namespace, cm.Name)
		return ctrl.Result{}, nil
	}
	r.load(ctx, cm)
	return ctrl.Result{}, nil
}

// load compiles a labelled ConfigMap and puts it in force, or records that it does not compile.
func (r *RuleSetReconciler) load(ctx context.Context, cm *corev1.ConfigMap) {
	version := fmt.Sprintf("%s/%s@%s", cm.Namespace, cm.Name, cm.ResourceVersion)
	r.Store.SetUID(cm.Namespace, cm.Name, cm.UID)
	data, ok := cm.Data[cardsv1alpha1.RuleSetKey]
	source := fmt.Sprintf("%t\x00%s\x00%s", ok, cm.Annotations[cardsv1alpha1.AnnotationRevision], data)
	key := client.ObjectKeyFromObject(cm)
	seen, _ := r.compiled.Load(key)
	last, _ := seen.(compiledAt)
	if last == (compiledAt{source, version}) {
		return
	}
	quiet := last.source == source
	r.compiled.Store(key, compiledAt{source, version})
	var rs *rules.RuleSet
	var err error
	if !ok {
		err = fmt.Errorf("the ConfigMap has no %q key", cardsv1alpha1.RuleSetKey)
	} else {
		rs, err = rules.Parse([]byte(data))
	}
	if err != nil {
		r.invalid(ctx, cm, version, data, err, quiet)
		return
	}
	rs.Name, rs.Version = cm.Namespace+"/"+cm.Name, version
	rs.Revision = text.Clip(cm.Annotations[cardsv1alpha1.AnnotationRevision], 128)
	r.Store.Set(cm.Namespace, cm.Name, rs)
	if quiet {
		return
	}
	r.annotate(ctx, cm, cardsv1alpha1.RuleSetInForce, "")
	ruleSetValid.WithLabelValues(cm.Namespace, cm.Name).Set(1)
	r.Recorder.Eventf(cm, nil, corev1.EventTypeNormal, cardsv1alpha1.EventRuleSetLoaded, "Compile", "%s is in force", version)
}

// invalid records a version that does not compile: terminal until the ConfigMap changes.
// quiet is a version whose rules.yaml was reported already: it is only held at its new version.
func (r *RuleSetReconciler) invalid(ctx context.Context, cm *corev1.ConfigMap, version, data string, err error, quiet bool) {
	kept := r.Store.SetInvalid(cm.Namespace, cm.Name, &authz.Invalid{Name: cm.Namespace + "/" + cm.Name, Version: version,
		Selector: rules.SelectorOf([]byte(data)), Message: err.Error()})
	if quiet {
		return
	}
	ruleSetErrors.WithLabelValues(cm.Namespace, cm.Name).Inc()
	ruleSetValid.WithLabelValues(cm.Namespace, cm.Name).Set(0)
	consequence := "no good version is in force: the cards it governs are declined (" + cardsv1alpha1.DecisionRuleSetInvalid + ")"
	if kept != nil {
		consequence = kept.Version + " stays in force"
	}
	logf.FromContext(ctx).Info("Rule set does not compile", "version", version, "error", err.Error(), "consequence", consequence)
	r.annotate(ctx, cm, cardsv1alpha1.RuleSetInvalid, text.Clip(fmt.Sprintf("%s: %v; %s", cardsv1alpha1.RuleSetKey, err, consequence), 1024))
	r.Recorder.Eventf(cm, nil, corev1.EventTypeWarning, cardsv1alpha1.EventRuleSetInvalid, "Compile", "%s: %v; %s", cardsv1alpha1.RuleSetKey, err, consequence)
}

// compiledAt is what a rule set was compiled from, and the version it was last held at.
type compiledAt struct{ source, version string }

// annotate shows the rule set's state on the ConfigMap itself, where GitOps tools and kubectl look (an Argo CD
// health check can read it; docs/operations.md has one). It writes only when the state changed, and the values
// name no resourceVersion, so its own write (which changes the ConfigMap's) settles at once. Best effort: the
// state is also in Events and metrics.
func (r *RuleSetReconciler) annotate(ctx context.Context, cm *corev1.ConfigMap, state, message string) {
	if cm.Annotations[cardsv1alpha1.AnnotationRuleSetState] == state && cm.Annotations[cardsv1alpha1.AnnotationRuleSetError] == message {
		return
	}
	before := cm.DeepCopy()
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[cardsv1alpha1.AnnotationRuleSetState] = state
	if message == "" {
		delete(cm.Annotations, cardsv1alpha1.AnnotationRuleSetError)
	} else {
		cm.Annotations[cardsv1alpha1.AnnotationRuleSetError] = message
	}
	if err := r.Patch(ctx, cm, client.MergeFrom(before), client.FieldOwner("cardplane-rules")); err != nil && !apierrors.IsNotFound(err) {
		logf.FromContext(ctx).Info("Could not annotate the rule set's state", "state", state, "error", err.Error())
	}
}

// remove takes a rule set out of force and says so on the ConfigMap (by reference: it may be gone).
func (r *RuleSetReconciler) remove(namespace, name string) {
	r.compiled.Delete(types.NamespacedName{Namespace: namespace, Name: name})
	ruleSetValid.DeleteLabelValues(namespace, name)
	held, uid := r.Store.Delete(namespace, name)
	if !held {
		return
	}
	ruleSetsRemoved.WithLabelValues(namespace, name).Inc()
	ref := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: uid}}
	r.Recorder.Eventf(ref, nil, corev1.EventTypeWarning, cardsv1alpha1.EventRuleSetRemoved, "Remove",
		"rule set %s/%s is no longer in force (deleted, or no longer labelled %s=true): the cards it governed get the "+
			"decision of the remaining rule sets, or %s when none governs them", namespace, name, cardsv1alpha1.LabelRuleSet, cardsv1alpha1.DecisionNoRuleSet)
}

// RuleSetCache restricts the manager's ConfigMap cache to rule sets (use it in cache.Options.ByObject): the
// manager then neither holds every ConfigMap of the cluster in memory nor sees unrelated ones, and a ConfigMap
// that loses the label looks deleted, which takes its rule set out of force.
var RuleSetCache = labels.SelectorFromSet(labels.Set{cardsv1alpha1.LabelRuleSet: "true"})

// SetupWithManager registers the reconciler and the first full sync; neither is leader-elected.
func (r *RuleSetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.Add(&ruleSetSync{r: r, cache: mgr.GetCache()}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&corev1.ConfigMap{}).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Named("ruleset").
		Complete(r)
}

// ruleSetSync loads every labelled ConfigMap once the cache has synced, then marks the store synced.
type ruleSetSync struct {
	r     *RuleSetReconciler
	cache interface {
		client.Reader
		WaitForCacheSync(context.Context) bool
	}
}

// NeedLeaderElection is false: every replica answers authorizations.
func (s *ruleSetSync) NeedLeaderElection() bool { return false }

// Start loads the rule sets and returns; the reconciler keeps them current.
func (s *ruleSetSync) Start(ctx context.Context) error {
	if !s.cache.WaitForCacheSync(ctx) {
		return nil // stopping
	}
	list := &corev1.ConfigMapList{}
	if err := s.cache.List(ctx, list, client.MatchingLabels{cardsv1alpha1.LabelRuleSet: "true"}); err != nil {
		return fmt.Errorf("listing rule sets: %w", err)
	}
	for i := range list.Items {
		if cm := &list.Items[i]; cm.DeletionTimestamp == nil {
			s.r.load(ctx, cm)
		}
	}
	s.r.Store.MarkSynced()
	logf.FromContext(ctx).Info("Rule sets loaded", "ruleSets", len(list.Items))
	return nil
}
