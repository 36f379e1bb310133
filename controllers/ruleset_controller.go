package controllers

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
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
)

var (
	ruleSetValid = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cardplane_rule_set_valid",
		Help: "1 when the rule set's current ConfigMap compiled and is in force, 0 when the last good version stays in force.",
	}, []string{"namespace", "name"})
	ruleSetErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cardplane_rule_set_errors_total",
		Help: "Rule set versions that failed to compile.",
	}, []string{"namespace", "name"})
)

func init() { metrics.Registry.MustRegister(ruleSetValid, ruleSetErrors) }

// RuleSetReconciler compiles rule-set ConfigMaps and swaps them into the Store. A version that fails to compile
// never replaces the last good one: it is reported with an Event naming the line and rule, a metric and a log
// line. It runs on every replica, because every replica answers authorizations.
type RuleSetReconciler struct {
	client.Client
	Store    *authz.Store
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch

// Reconcile compiles one rule set.
func (r *RuleSetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, req.NamespacedName, cm); err != nil {
		if client.IgnoreNotFound(err) == nil {
			r.Store.Delete(req.Namespace, req.Name)
			ruleSetValid.DeleteLabelValues(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if cm.Labels[cardsv1alpha1.LabelRuleSet] != "true" || cm.DeletionTimestamp != nil {
		r.Store.Delete(cm.Namespace, cm.Name)
		ruleSetValid.DeleteLabelValues(cm.Namespace, cm.Name)
		return ctrl.Result{}, nil
	}
	version := fmt.Sprintf("%s/%s@%s", cm.Namespace, cm.Name, cm.ResourceVersion)
	if cur := r.Store.Get(cm.Namespace, cm.Name); cur != nil && cur.Version == version {
		return ctrl.Result{}, nil
	}
	data, ok := cm.Data[cardsv1alpha1.RuleSetKey]
	var rs *rules.RuleSet
	var err error
	if !ok {
		err = fmt.Errorf("the ConfigMap has no %q key", cardsv1alpha1.RuleSetKey)
	} else {
		rs, err = rules.Parse([]byte(data))
	}
	if err != nil {
		ruleSetErrors.WithLabelValues(cm.Namespace, cm.Name).Inc()
		ruleSetValid.WithLabelValues(cm.Namespace, cm.Name).Set(0)
		kept := "no earlier version is in force"
		if cur := r.Store.Get(cm.Namespace, cm.Name); cur != nil {
			kept = cur.Version + " stays in force"
		}
		logf.FromContext(ctx).Info("Rule set does not compile; keeping the last good version", "version", version, "error", err.Error(), "kept", kept)
		r.Recorder.Eventf(cm, nil, corev1.EventTypeWarning, "RuleSetInvalid", "Compile", "%s: %v; %s", cardsv1alpha1.RuleSetKey, err, kept)
		return ctrl.Result{}, nil // terminal until the ConfigMap changes
	}
	rs.Name, rs.Version = cm.Namespace+"/"+cm.Name, version
	r.Store.Set(cm.Namespace, cm.Name, rs)
	ruleSetValid.WithLabelValues(cm.Namespace, cm.Name).Set(1)
	r.Recorder.Eventf(cm, nil, corev1.EventTypeNormal, "RuleSetLoaded", "Compile", "%s is in force", version)
	return ctrl.Result{}, nil
}

// RuleSetCache restricts the manager's ConfigMap cache to rule sets (use it in cache.Options.ByObject): the
// manager then neither holds every ConfigMap of the cluster in memory nor sees unrelated ones, and a ConfigMap
// that loses the label looks deleted, which takes its rule set out of force.
var RuleSetCache = labels.SelectorFromSet(labels.Set{cardsv1alpha1.LabelRuleSet: "true"})

// SetupWithManager registers the reconciler; it is not leader-elected.
func (r *RuleSetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&corev1.ConfigMap{}).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Named("ruleset").
		Complete(r)
}
