// Package controllers holds the reconcilers, one per kind.
package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/sinkconfig"
	"github.com/cardplane/cardplane/internal/text"
)

// FieldOwner is the field manager of every write the controllers make.
const FieldOwner = client.FieldOwner("cardplane-controller")

// secretRefIndex indexes WebhookEndpoints by the Secrets they refer to, so a rotated or deleted Secret
// re-reconciles exactly the endpoints that use it.
const secretRefIndex = ".spec.secretRefs"

// targetNamespaceIndex indexes WebhookEndpoints writing into another namespace by that namespace, so a
// namespace's consent given, withdrawn or deleted re-reconciles the endpoints that write there.
const targetNamespaceIndex = ".spec.targetNamespace"

// WebhookEndpointReconciler validates endpoints and their Secrets and reports Ready.
// The receiver serves an endpoint only while it is Ready.
type WebhookEndpointReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// ValidateConfig runs the provider adapter's own checks of the endpoint's options (a generic CEL mapping, a
	// time zone name); an error makes the endpoint InvalidConfig with its message. Required: cmd wires the
	// adapters' (webhookserver/adapters.ValidateConfig), which this package may not import.
	ValidateConfig func(*cardsv1alpha1.WebhookEndpoint) error
}

// +kubebuilder:rbac:groups=cards.cardplane.io,resources=webhookendpoints,verbs=get;list;watch
// +kubebuilder:rbac:groups=cards.cardplane.io,resources=webhookendpoints/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile validates one WebhookEndpoint.
func (r *WebhookEndpointReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ep := &cardsv1alpha1.WebhookEndpoint{}
	if err := r.Get(ctx, req.NamespacedName, ep); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := ep.DeepCopy()
	ep.Status.ObservedGeneration = ep.Generation
	ep.Status.ReceivePath = ReceivePath(ep)

	cond := metav1.Condition{Type: cardsv1alpha1.ConditionReady, ObservedGeneration: ep.Generation}
	_, err := endpointconfig.Resolve(ctx, r.Client, ep)
	if err == nil {
		if verr := r.ValidateConfig(ep); verr != nil {
			err = &endpointconfig.Error{Reason: cardsv1alpha1.ReasonInvalidConfig, Message: verr.Error()}
		}
	}
	var cfgErr *endpointconfig.Error
	switch {
	case err == nil:
		cond.Status, cond.Reason = metav1.ConditionTrue, cardsv1alpha1.ReasonAccepting
		cond.Message = fmt.Sprintf("Accepting %s callbacks on %s", ep.Spec.Provider, ep.Status.ReceivePath)
	case errors.As(err, &cfgErr):
		// A configuration problem is terminal until the spec or a Secret changes: both are watched.
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, cfgErr.Reason, cfgErr.Message
	default:
		return ctrl.Result{}, err
	}
	r.setCondition(ep, before, cond)
	var readErr error // a failed read of a destination's Secrets: Ready is written all the same, and it is retried
	if len(ep.Spec.Destinations) == 0 {
		apimeta.RemoveStatusCondition(&ep.Status.Conditions, cardsv1alpha1.ConditionDestinationsReady)
	} else if dest, err := destinationsCondition(ctx, r.Client, ep); err != nil {
		readErr = err
	} else {
		r.setCondition(ep, before, dest)
	}
	if err := r.Status().Patch(ctx, ep, client.MergeFrom(before), FieldOwner); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{}, readErr
}

// setCondition sets cond on ep, with an Event when its status or reason changed since before.
func (r *WebhookEndpointReconciler) setCondition(ep, before *cardsv1alpha1.WebhookEndpoint, cond metav1.Condition) {
	old := apimeta.FindStatusCondition(before.Status.Conditions, cond.Type)
	apimeta.SetStatusCondition(&ep.Status.Conditions, cond)
	if old == nil || old.Status != cond.Status || old.Reason != cond.Reason {
		kind := corev1.EventTypeNormal
		if cond.Status != metav1.ConditionTrue {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(ep, nil, kind, cond.Reason, "Validate", "%s", cond.Message)
	}
}

// destinationsCondition builds every destination's transport as the dispatcher will (signing key, headers,
// bearer token, CA bundle, client certificate, proxy URL) and says which cannot be. It is a condition apart from
// Ready: the receiver serves an endpoint while it is Ready, and a destination that cannot be reached must not
// stop ingestion. Its states wait, without spending their retry budget, and are delivered once the Secret or
// the spec is fixed; a destination that had a good configuration keeps using it meanwhile. An error is a
// failed read, worth retrying.
func destinationsCondition(ctx context.Context, r client.Reader, ep *cardsv1alpha1.WebhookEndpoint) (metav1.Condition, error) {
	cond := metav1.Condition{Type: cardsv1alpha1.ConditionDestinationsReady, ObservedGeneration: ep.Generation,
		Status: metav1.ConditionTrue, Reason: "Configured",
		Message: fmt.Sprintf("the transports of all %d destinations can be built", len(ep.Spec.Destinations))}
	for i := range ep.Spec.Destinations {
		d := &ep.Spec.Destinations[i]
		s, err := sinkconfig.Build(ctx, r, ep.Namespace, sinkconfig.Destination(d), sinkconfig.Options{})
		var cfgErr *sinkconfig.ConfigError
		switch {
		case errors.As(err, &cfgErr):
			cond.Status, cond.Reason = metav1.ConditionFalse, cfgErr.Reason
			cond.Message = text.Clip(fmt.Sprintf("destination %s: %v; until this is fixed its states wait, or go with its last "+
				"good configuration if it had one (callbacks are still accepted)", d.Name, cfgErr), 1024)
			return cond, nil
		case err != nil:
			return cond, err
		}
		_ = s.Close()
	}
	return cond, nil
}

// ReceivePath is where providers send an endpoint's callbacks.
func ReceivePath(ep *cardsv1alpha1.WebhookEndpoint) string {
	p := "/webhooks/" + ep.Namespace + "/" + ep.Name
	if ep.Spec.Verification != nil && ep.Spec.Verification.RequireURLToken {
		p += "/{urlToken}"
	}
	return p
}

// SetupWithManager registers the reconciler and its Secret index.
func (r *WebhookEndpointReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.ValidateConfig == nil {
		return errors.New("WebhookEndpointReconciler needs ValidateConfig (webhookserver/adapters.ValidateConfig)")
	}
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &cardsv1alpha1.WebhookEndpoint{}, secretRefIndex,
		func(o client.Object) []string { return endpointconfig.SecretNames(o.(*cardsv1alpha1.WebhookEndpoint)) })
	if err != nil {
		return fmt.Errorf("indexing endpoint Secrets: %w", err)
	}
	err = mgr.GetFieldIndexer().IndexField(context.Background(), &cardsv1alpha1.WebhookEndpoint{}, targetNamespaceIndex,
		func(o client.Object) []string {
			if t := o.(*cardsv1alpha1.WebhookEndpoint).Spec.TargetNamespace; t != "" && t != o.GetNamespace() {
				return []string{t}
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("indexing endpoint target namespaces: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&cardsv1alpha1.WebhookEndpoint{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Metadata only: a rotation is seen, and no Secret's data is held in the cache.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.endpointsForSecret), builder.OnlyMetadata).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.endpointsForNamespace), builder.OnlyMetadata).
		Named("webhookendpoint").
		Complete(r)
}

func (r *WebhookEndpointReconciler) endpointsForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	return r.endpoints(ctx, o, client.InNamespace(o.GetNamespace()), client.MatchingFields{secretRefIndex: o.GetName()})
}

func (r *WebhookEndpointReconciler) endpointsForNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return r.endpoints(ctx, o, client.MatchingFields{targetNamespaceIndex: o.GetName()})
}

// endpoints lists the endpoints a changed Secret or Namespace concerns.
func (r *WebhookEndpointReconciler) endpoints(ctx context.Context, changed client.Object, opts ...client.ListOption) []reconcile.Request {
	list := &cardsv1alpha1.WebhookEndpointList{}
	if err := r.List(ctx, list, opts...); err != nil {
		logf.FromContext(ctx).Error(err, "Listing endpoints", "object", klog.KObj(changed))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, ep := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ep.Namespace, Name: ep.Name}})
	}
	return reqs
}
