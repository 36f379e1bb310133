// Package rulesadmission is the validating admission webhook of rule sets. It refuses a ConfigMap labelled
// cards.cardplane.io/rule-set: "true" whose rules.yaml is missing or does not compile, with the messages
// `cardplane rules lint` prints (rules.Location renders both), so `kubectl apply`, Argo CD and Flux fail at the
// write instead of the receiver finding out afterwards (docs/rules.md, section 5).
//
// It is a convenience in front of the receiver, not part of its safety: the receiver still compiles every
// version and never puts a broken one in force (the last good one stays, or the cards are declined
// RULE_SET_INVALID). That is why the registration fails open (config/webhook: failurePolicy Ignore): with
// Fail, every rule-set write, the fix of a broken set included, would be refused while cardplane is down.
package rulesadmission

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/rules"
)

// Path is where the webhook is served; the ValidatingWebhookConfiguration names it.
const Path = "/validate-rule-sets"

// MaxProblems bounds the problems listed in a refusal: the answer travels through the API server into
// kubectl's, Argo CD's or Flux's status, and the first ones are what a user fixes first.
const MaxProblems = 20

// Handler is the admission.Handler of rule-set ConfigMaps. Use NewHandler.
type Handler struct {
	decoder admission.Decoder
	// compiling admits one compile at a time. The process also answers card authorizations on deadlines of
	// 2 s; a burst of large rule sets (a GitOps sync of many namespaces) then takes at most one core. A waiting
	// request is bounded by the registration's timeout, after which the API server applies failurePolicy.
	compiling chan struct{}
}

// NewHandler returns a Handler.
func NewHandler() *Handler {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		panic(fmt.Errorf("registering core/v1: %w", err)) // a static scheme: cannot fail
	}
	return &Handler{decoder: admission.NewDecoder(s), compiling: make(chan struct{}, 1)}
}

// Webhook wraps the handler for a webhook.Server: admission.Webhook decodes the AdmissionReview, caps its
// body (7 MiB, answered 413) and recovers from panics.
func (h *Handler) Webhook() *admission.Webhook {
	return &admission.Webhook{Handler: h}
}

// Handle allows everything but the CREATE or UPDATE of a labelled ConfigMap whose rules.yaml is missing or
// does not compile. Only the new object is read: the old one does not matter to whether the write is good.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	if req.Kind.Group != "" || req.Kind.Kind != "ConfigMap" {
		// A registration that sends more than ConfigMaps is a mistake of the registration; blocking what this
		// webhook does not judge would be a worse one.
		return admission.Allowed("")
	}
	cm := &corev1.ConfigMap{}
	if err := h.decoder.Decode(req, cm); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the ConfigMap: %w", err))
	}
	if cm.Labels[cardsv1alpha1.LabelRuleSet] != "true" {
		return admission.Allowed("") // not a rule set: cardplane never loads it
	}
	ref := klog.KRef(req.Namespace, cm.Name)
	data, ok := cm.Data[cardsv1alpha1.RuleSetKey]
	if !ok {
		return deny(ctx, req, fmt.Sprintf("rule set %s: %s (remove the label %s if it is not a rule set)",
			ref, rules.MissingKey, cardsv1alpha1.LabelRuleSet), 1)
	}
	problems := h.lint(data)
	if n := len(problems); n > 0 {
		if n > MaxProblems {
			problems = append(problems[:MaxProblems:MaxProblems],
				fmt.Sprintf("... and %d more (`cardplane rules lint` on the file lists every one)", n-MaxProblems))
		}
		return deny(ctx, req, fmt.Sprintf("rule set %s does not compile:\n%s", ref, strings.Join(problems, "\n")), n)
	}
	return admission.Allowed("")
}

// lint lists the problems of rules.yaml as lint prints them for a file named rules.yaml, one compile at a time.
func (h *Handler) lint(data string) []string {
	h.compiling <- struct{}{}
	defer func() { <-h.compiling }() // also after a panic, which admission.Webhook recovers from
	return rules.Location{File: cardsv1alpha1.RuleSetKey}.Lint([]byte(data))
}

// deny refuses the write with message and logs it (admission.Webhook's logger already names the object, the
// user and the request).
func deny(ctx context.Context, req admission.Request, message string, problems int) admission.Response {
	logf.FromContext(ctx).Info("Rule set refused", "operation", req.Operation, "problems", problems)
	return admission.Denied(message)
}
