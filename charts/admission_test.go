package charts_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// admissionSecret and admissionWebhook return the rule-set admission webhook's TLS Secret and registration.
func admissionSecret(t *testing.T, objs []*unstructured.Unstructured) corev1.Secret {
	t.Helper()
	var s corev1.Secret
	findNamed(t, objs, "Secret", "cardplane-admission-tls", &s)
	return s
}

func admissionWebhook(t *testing.T, objs []*unstructured.Unstructured) admissionregistrationv1.ValidatingWebhook {
	t.Helper()
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	find(t, objs, "ValidatingWebhookConfiguration", &vwc)
	if len(vwc.Webhooks) != 1 {
		t.Fatalf("webhooks: %+v", vwc.Webhooks)
	}
	return vwc.Webhooks[0]
}

// verifyServing checks that the serving certificate in certPEM is one the API server accepts for host when it
// trusts caPEM (the caBundle): a chain to that CA, for that name, for server authentication.
func verifyServing(t *testing.T, certPEM, caPEM []byte, host string) {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("the caBundle holds no PEM certificate: %q", caPEM)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatalf("tls.crt is not PEM: %q", certPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("the API server would refuse the admission webhook's certificate for %s: %v", host, err)
	}
}

// TestAdmissionWebhookSelfManaged: by default the chart generates the webhook's CA and serving certificate, and
// the API server would accept the certificate for the admission Service's name with the caBundle it registers;
// the registration is the one config/webhook describes (fail open, rule-set ConfigMaps only), and the pods mount
// the Secret optionally, so a replica never waits for it.
func TestAdmissionWebhookSelfManaged(t *testing.T) {
	const ns = "cardplane-admission"
	objs := objects(t, render(t, ns))
	secret := admissionSecret(t, objs)
	wh := admissionWebhook(t, objs)
	if secret.Type != corev1.SecretTypeTLS || len(secret.Data["tls.key"]) == 0 || !bytes.Equal(secret.Data["ca.crt"], wh.ClientConfig.CABundle) {
		t.Fatalf("Secret %s (type %s) and the caBundle disagree", secret.Name, secret.Type)
	}
	verifyServing(t, secret.Data["tls.crt"], wh.ClientConfig.CABundle, "cardplane-admission."+ns+".svc")

	svc := wh.ClientConfig.Service
	if wh.Name != "rule-sets.cards.cardplane.io" || svc == nil || svc.Name != "cardplane-admission" || svc.Namespace != ns ||
		*svc.Path != "/validate-rule-sets" || *svc.Port != 443 {
		t.Errorf("webhook %s calls %+v", wh.Name, svc)
	}
	if *wh.FailurePolicy != admissionregistrationv1.Ignore || *wh.TimeoutSeconds != 5 || *wh.SideEffects != admissionregistrationv1.SideEffectClassNone ||
		wh.NamespaceSelector != nil || !reflect.DeepEqual(wh.ObjectSelector.MatchLabels, map[string]string{"cards.cardplane.io/rule-set": "true"}) {
		t.Errorf("webhook: failurePolicy %s, timeout %d, namespaceSelector %v, objectSelector %v", *wh.FailurePolicy, *wh.TimeoutSeconds,
			wh.NamespaceSelector, wh.ObjectSelector)
	}
	// The manager's own annotation patches skip the webhook: it must be able to mark a set Invalid.
	if mc := wh.MatchConditions; len(mc) != 1 || mc[0].Expression != "request.userInfo.username != 'system:serviceaccount:"+ns+":cardplane'" {
		t.Errorf("matchConditions: %+v", mc)
	}
	if r := wh.Rules; len(r) != 1 || !slices.Equal(r[0].Resources, []string{"configmaps"}) ||
		!slices.Equal(r[0].Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}) {
		t.Errorf("rules: %+v", r)
	}

	var d appsv1.Deployment
	find(t, objs, "Deployment", &d)
	if v := volume(t, d.Spec.Template.Spec, "admission-tls"); v.Secret == nil || v.Secret.SecretName != secret.Name ||
		v.Secret.Optional == nil || !*v.Secret.Optional {
		t.Errorf("the admission certificate volume must be Secret %s, optional: %+v", secret.Name, v)
	}
	var admissionSvc corev1.Service
	findNamed(t, objs, "Service", "cardplane-admission", &admissionSvc)
	if p := admissionSvc.Spec.Ports; len(p) != 1 || p[0].Port != 443 || p[0].TargetPort.String() != "admission" {
		t.Errorf("admission Service ports: %+v", p)
	}
}

// TestAdmissionCertificateKeptAcrossUpgrades installs the chart for real (helm install on the API server), then
// upgrades it: the generated certificate, and with it the caBundle, must stay what the running pods hold.
func TestAdmissionCertificateKeptAcrossUpgrades(t *testing.T) {
	const release, ns = "cardplane-keep", "cardplane-keep"
	createNamespace(t, ns, nil)
	kube := []string{"--kubeconfig", env.Kubeconfig, "--namespace", ns, "--set", "crds.install=false"}
	runHelm(t, append([]string{"install", release, chartDir}, kube...)...)
	t.Cleanup(func() { runHelm(t, "uninstall", release, "--kubeconfig", env.Kubeconfig, "--namespace", ns) })
	before := installedAdmissionTLS(t, release, ns)

	runHelm(t, append([]string{"upgrade", release, chartDir, "--set", "replicaCount=3"}, kube...)...)
	after := installedAdmissionTLS(t, release, ns)
	if !reflect.DeepEqual(before, after) {
		t.Error("helm upgrade replaced the admission webhook's certificate: the caBundle would change under running pods")
	}
	verifyServing(t, after["tls.crt"], after["ca.crt"], release+"-admission."+ns+".svc")
}

// installedAdmissionTLS reads the stored Secret and checks the stored registration's caBundle is its CA.
func installedAdmissionTLS(t *testing.T, release, ns string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	var s corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: release + "-admission-tls"}, &s); err != nil {
		t.Fatal(err)
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := env.Client.Get(ctx, client.ObjectKey{Name: release + "-rule-sets"}, &vwc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(vwc.Webhooks[0].ClientConfig.CABundle, s.Data["ca.crt"]) {
		t.Errorf("the stored caBundle is not the CA in Secret %s", s.Name)
	}
	return s.Data
}

// TestAdmissionWebhookCertManager: with admission.certManager.enabled cert-manager writes the Secret the pods
// mount and its CA injector fills the caBundle; without an issuer of the user's the chart brings a private CA
// (self-signed Issuer → CA Certificate → CA Issuer → serving Certificate), and every reference in that chain
// names an object of the chain. Both renderings pass a server-side dry run.
func TestAdmissionWebhookCertManager(t *testing.T) {
	const ns = "cardplane-admission-cm"
	createNamespace(t, ns, nil)
	manifest := render(t, ns, "--set", "admission.certManager.enabled=true")
	objs := objects(t, manifest)
	for _, o := range objs {
		if o.GetKind() == "Secret" {
			t.Errorf("Secret %s rendered: cert-manager writes the admission Secret", o.GetName())
		}
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	find(t, objs, "ValidatingWebhookConfiguration", &vwc)
	if got := vwc.Annotations["cert-manager.io/inject-ca-from"]; got != ns+"/cardplane-admission" || len(vwc.Webhooks[0].ClientConfig.CABundle) != 0 {
		t.Errorf("inject-ca-from %q, caBundle %d bytes: want the serving Certificate's CA injected", got, len(vwc.Webhooks[0].ClientConfig.CABundle))
	}
	serving := nested(t, objs, "Certificate", "cardplane-admission")
	if serving["secretName"] != "cardplane-admission-tls" || !slices.Contains(serving["dnsNames"].([]any), "cardplane-admission."+ns+".svc") {
		t.Errorf("serving Certificate: %v", serving)
	}
	caIssuer := nested(t, objs, "Issuer", issuerName(t, serving, "Issuer"))
	ca := nested(t, objs, "Certificate", "cardplane-admission-ca")
	if caIssuer["ca"].(map[string]any)["secretName"] != ca["secretName"] || ca["isCA"] != true {
		t.Errorf("the CA Issuer %v does not sign with the CA Certificate's Secret %v", caIssuer, ca)
	}
	if self := nested(t, objs, "Issuer", issuerName(t, ca, "Issuer")); self["selfSigned"] == nil {
		t.Errorf("the CA Certificate's issuer is not self-signed: %v", self)
	}
	dryRun(t, manifest)

	// An issuer of the user's: only the serving Certificate, issued by it.
	manifest = render(t, ns, "--set", "admission.certManager.enabled=true", "--set", "admission.certManager.issuerRef.name=internal-ca")
	objs = objects(t, manifest)
	if slices.Contains(kinds(objs), "Issuer") {
		t.Errorf("Issuers rendered beside the user's issuer: %v", kinds(objs))
	}
	if got := issuerName(t, nested(t, objs, "Certificate", "cardplane-admission"), "ClusterIssuer"); got != "internal-ca" {
		t.Errorf("serving Certificate issued by %q, want ClusterIssuer internal-ca", got)
	}
	dryRun(t, manifest)
}

// nested returns the spec of the object of kind named name.
func nested(t *testing.T, objs []*unstructured.Unstructured, kind, name string) map[string]any {
	t.Helper()
	var o unstructured.Unstructured
	findNamed(t, objs, kind, name, &o.Object)
	spec, _, _ := unstructured.NestedMap(o.Object, "spec")
	return spec
}

// issuerName returns the name of a Certificate spec's issuerRef, which must be of kind.
func issuerName(t *testing.T, spec map[string]any, kind string) string {
	t.Helper()
	ref, _ := spec["issuerRef"].(map[string]any)
	if ref["kind"] != kind || ref["group"] != "cert-manager.io" {
		t.Errorf("issuerRef %v, want a %s of cert-manager.io", ref, kind)
	}
	name, _ := ref["name"].(string)
	return name
}

// TestAdmissionWebhookDisabled: admission.enabled=false turns the manager's webhook off explicitly (its flag
// defaults to :9445) and renders nothing of it, cert-manager objects included.
func TestAdmissionWebhookDisabled(t *testing.T) {
	objs := objects(t, render(t, "cardplane-system", "--set", "admission.enabled=false", "--set", "admission.certManager.enabled=true",
		"--set", "networkPolicy.enabled=true"))
	for _, o := range objs {
		if k := o.GetKind(); k == "ValidatingWebhookConfiguration" || k == "Secret" || k == "Certificate" || k == "Issuer" ||
			strings.Contains(o.GetName(), "admission") {
			t.Errorf("%s %s rendered with the webhook off", k, o.GetName())
		}
	}
	var d appsv1.Deployment
	find(t, objs, "Deployment", &d)
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--admission-bind-address=0") || slices.Contains(c.Args, "--admission-cert-dir=/admission-tls") {
		t.Errorf("args %v: want --admission-bind-address=0 and no certificate directory", c.Args)
	}
	if _, ok := mountPaths(d.Spec.Template.Spec)["admission-tls"]; ok || slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "admission" }) {
		t.Errorf("admission port or volume left: ports %v mounts %v", c.Ports, c.VolumeMounts)
	}
	var np networkingv1.NetworkPolicy
	find(t, objs, "NetworkPolicy", &np)
	if admissionIngress(np) != nil {
		t.Error("the NetworkPolicy opens the admission port with the webhook off")
	}
}

// admissionIngress returns the NetworkPolicy's ingress rule for the admission port, or nil.
func admissionIngress(np networkingv1.NetworkPolicy) *networkingv1.NetworkPolicyIngressRule {
	for i, r := range np.Spec.Ingress {
		if len(r.Ports) == 1 && r.Ports[0].Port.String() == "admission" {
			return &np.Spec.Ingress[i]
		}
	}
	return nil
}

// TestAdmissionWebhookOptions: watchNamespaces limits the webhook to those namespaces (the manager loads rule
// sets nowhere else), failurePolicy and timeoutSeconds reach the registration, and networkPolicy.admissionFrom
// the admission port's ingress rule (every source when empty: the API server is often not a pod).
func TestAdmissionWebhookOptions(t *testing.T) {
	objs := objects(t, render(t, "cardplane-system", "--set", "watchNamespaces={payments,team-a}", "--set", "admission.failurePolicy=Fail",
		"--set", "admission.timeoutSeconds=12", "--set", "networkPolicy.enabled=true", "--set", "networkPolicy.admissionFrom[0].ipBlock.cidr=10.0.0.0/16"))
	wh := admissionWebhook(t, objs)
	sel := wh.NamespaceSelector
	if sel == nil || len(sel.MatchExpressions) != 1 || sel.MatchExpressions[0].Key != "kubernetes.io/metadata.name" ||
		!slices.Equal(sel.MatchExpressions[0].Values, []string{"payments", "team-a"}) {
		t.Errorf("namespaceSelector %+v, want the watched namespaces", sel)
	}
	if *wh.FailurePolicy != admissionregistrationv1.Fail || *wh.TimeoutSeconds != 12 {
		t.Errorf("failurePolicy %s, timeoutSeconds %d", *wh.FailurePolicy, *wh.TimeoutSeconds)
	}
	var np networkingv1.NetworkPolicy
	find(t, objs, "NetworkPolicy", &np)
	if r := admissionIngress(np); r == nil || len(r.From) != 1 || r.From[0].IPBlock == nil || r.From[0].IPBlock.CIDR != "10.0.0.0/16" {
		t.Errorf("admission ingress rule: %+v", r)
	}
	find(t, objects(t, render(t, "cardplane-system", "--set", "networkPolicy.enabled=true")), "NetworkPolicy", &np)
	if r := admissionIngress(np); r == nil || len(r.From) != 0 {
		t.Errorf("default admission ingress rule %+v: want the port open to every source", r)
	}
}
