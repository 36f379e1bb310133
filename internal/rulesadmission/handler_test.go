package rulesadmission_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/rules"
	"github.com/cardplane/cardplane/internal/rulesadmission"
)

// brokenRules has three mistakes, on lines 2, 6 and 9 of rules.yaml.
const brokenRules = `defaultDecision: approve
timeZone: Europe/Berlinn
rules:
- name: block-gambling
  reason: BLOCKED_MCC
  mcc: {block: ["7995", "780"]}
- name: daily-spend
  reason: SPEND_LIMIT_DAILY
  spend: {window: Day, maxAmount: "1000.00", currency: USD}
`

// brokenProblems is what `cardplane rules lint rules.yaml` prints for brokenRules in a file of its own.
var brokenProblems = []string{
	`rules.yaml:2: timeZone: "Europe/Berlinn" is not an IANA time zone name (e.g. UTC, Europe/Berlin)`,
	`rules.yaml:6: rule block-gambling: mcc: "780" is not a 4-digit merchant category code or a range such as 7800-7802`,
	`rules.yaml:9: rule daily-spend: spend.window: "Day" is not Daily, Weekly, Monthly or AllTime`,
}

const validRules = `defaultDecision: approve
rules:
- name: block-gambling
  reason: BLOCKED_MCC
  mcc: {block: ["7995"]}
`

func configMap(labels map[string]string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "card-rules", Labels: labels}, Data: data}
}

var ruleSetLabel = map[string]string{cardsv1alpha1.LabelRuleSet: "true"}

func request(t *testing.T, op admissionv1.Operation, kind string, obj any) admission.Request {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Operation: op, Namespace: "payments", Name: "card-rules",
		Kind:     metav1.GroupVersionKind{Version: "v1", Kind: kind},
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"},
	}}
	if op == admissionv1.Delete {
		req.OldObject = runtime.RawExtension{Raw: raw}
	} else {
		req.Object = runtime.RawExtension{Raw: raw}
	}
	return req
}

// manyProblems is a rule set of n rules, each with a reason lint refuses.
func manyProblems(n int) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&b, "- name: r%d\n  reason: lower\n  mcc: {block: [\"7995\"]}\n", i)
	}
	return b.String()
}

func TestHandle(t *testing.T) {
	broken := map[string]string{cardsv1alpha1.RuleSetKey: brokenRules}
	header := "rule set payments/card-rules does not compile:\n"
	tests := []struct {
		name    string
		req     admission.Request
		allowed bool
		code    int32
		message string
	}{
		{name: "a valid rule set is allowed", allowed: true, code: http.StatusOK,
			req: request(t, admissionv1.Create, "ConfigMap", configMap(ruleSetLabel, map[string]string{cardsv1alpha1.RuleSetKey: validRules}))},
		{name: "a broken rule set is refused with lint's lines", code: http.StatusForbidden,
			message: header + strings.Join(brokenProblems, "\n"),
			req:     request(t, admissionv1.Create, "ConfigMap", configMap(ruleSetLabel, broken))},
		{name: "an update to a broken rule set is refused", code: http.StatusForbidden,
			message: header + strings.Join(brokenProblems, "\n"),
			req:     request(t, admissionv1.Update, "ConfigMap", configMap(ruleSetLabel, broken))},
		{name: "a rule set without rules.yaml is refused", code: http.StatusForbidden,
			message: "rule set payments/card-rules: the ConfigMap has no data key rules.yaml (remove the label cards.cardplane.io/rule-set if it is not a rule set)",
			req:     request(t, admissionv1.Create, "ConfigMap", configMap(ruleSetLabel, map[string]string{"rules.yml": validRules}))},
		{name: "an unlabelled ConfigMap is not judged", allowed: true, code: http.StatusOK,
			req: request(t, admissionv1.Create, "ConfigMap", configMap(nil, broken))},
		{name: "a label other than true is not a rule set", allowed: true, code: http.StatusOK,
			req: request(t, admissionv1.Update, "ConfigMap", configMap(map[string]string{cardsv1alpha1.LabelRuleSet: "false"}, broken))},
		{name: "a delete is allowed", allowed: true, code: http.StatusOK,
			req: request(t, admissionv1.Delete, "ConfigMap", configMap(ruleSetLabel, broken))},
		{name: "another kind is not judged", allowed: true, code: http.StatusOK,
			req: request(t, admissionv1.Create, "Secret", configMap(ruleSetLabel, broken))},
		{name: "an object that is not a ConfigMap is a bad request", code: http.StatusBadRequest,
			req: request(t, admissionv1.Create, "ConfigMap", map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "data": 7})},
		{name: "the problems listed are bounded", code: http.StatusForbidden,
			message: "... and 5 more (`cardplane rules lint` on the file lists every one)",
			req: request(t, admissionv1.Create, "ConfigMap", configMap(ruleSetLabel,
				map[string]string{cardsv1alpha1.RuleSetKey: manyProblems(rulesadmission.MaxProblems + 5)}))},
	}
	h := rulesadmission.NewHandler()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.Handle(context.Background(), tt.req)
			if resp.Allowed != tt.allowed || resp.Result.Code != tt.code {
				t.Fatalf("allowed %v code %d (%s), want allowed %v code %d", resp.Allowed, resp.Result.Code, resp.Result.Message, tt.allowed, tt.code)
			}
			if tt.message != "" && !strings.HasSuffix(resp.Result.Message, tt.message) {
				t.Errorf("message:\n%s\nwant it to end with:\n%s", resp.Result.Message, tt.message)
			}
			if len(resp.Warnings) > 0 || len(resp.Patches) > 0 {
				t.Errorf("warnings %v, patches %v: want none", resp.Warnings, resp.Patches)
			}
		})
	}
}

// TestBoundedProblemsKeepTheFirst: a refusal lists the first MaxProblems problems in document order, plus a line
// counting the rest.
func TestBoundedProblemsKeepTheFirst(t *testing.T) {
	data := manyProblems(rulesadmission.MaxProblems + 5)
	all := rules.Location{File: cardsv1alpha1.RuleSetKey}.Lint([]byte(data))
	resp := rulesadmission.NewHandler().Handle(context.Background(), request(t, admissionv1.Create, "ConfigMap",
		configMap(ruleSetLabel, map[string]string{cardsv1alpha1.RuleSetKey: data})))
	lines := strings.Split(resp.Result.Message, "\n")
	if len(lines) != 1+rulesadmission.MaxProblems+1 {
		t.Fatalf("%d lines, want a header, %d problems and a count:\n%s", len(lines), rulesadmission.MaxProblems, resp.Result.Message)
	}
	if got, want := strings.Join(lines[1:1+rulesadmission.MaxProblems], "\n"), strings.Join(all[:rulesadmission.MaxProblems], "\n"); got != want {
		t.Errorf("problems:\n%s\nwant:\n%s", got, want)
	}
}
