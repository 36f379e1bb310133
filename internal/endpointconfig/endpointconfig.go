// Package endpointconfig turns a WebhookEndpoint and its Secrets into the settings the receiver verifies
// callbacks with. The WebhookEndpoint reconciler uses the same code to decide readiness, so an endpoint
// is Ready exactly when the receiver can serve it.
package endpointconfig

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// DefaultTimestampTolerance bounds how old a signed timestamp may be.
const DefaultTimestampTolerance = 5 * time.Minute

// Error is a configuration problem with the reason the Ready condition shows.
type Error struct {
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Message }

// ErrSuspended is returned for a suspended endpoint.
var ErrSuspended = &Error{Reason: cardsv1alpha1.ReasonSuspended, Message: "the endpoint is suspended"}

// Resolved is everything the receiver needs to verify and decode one endpoint's callbacks.
// It holds key material: never log it.
type Resolved struct {
	Endpoint           *cardsv1alpha1.WebhookEndpoint
	TargetNamespace    string
	SigningKey         []byte
	EncryptionKey      []byte // BananaTech AES key, already derived (16, 24 or 32 bytes)
	URLToken           string
	SourcePrefixes     []netip.Prefix
	TrustedProxies     []netip.Prefix
	TimestampTolerance time.Duration
}

// SecretNames lists the Secrets an endpoint refers to, for the reconciler's field index.
func SecretNames(ep *cardsv1alpha1.WebhookEndpoint) []string {
	var names []string
	if ep.Spec.CredentialsRef != nil {
		names = append(names, ep.Spec.CredentialsRef.Name)
	}
	for _, d := range ep.Spec.Destinations {
		names = append(names, d.SecretRef.Name)
		names = append(names, d.HTTP.SecretNames()...)
	}
	return names
}

// Resolve reads the endpoint's Secrets and checks everything the API schema cannot, for accepting callbacks:
// the receiver calls it on every callback and serves the endpoint only while it resolves. The destinations'
// Secrets are not read here: a destination that cannot be built holds back its own deliveries (the reconciler
// reports it on DestinationsReady), never the ingestion of the provider's events.
func Resolve(ctx context.Context, r client.Reader, ep *cardsv1alpha1.WebhookEndpoint) (*Resolved, error) {
	if ep.Spec.Suspend {
		return nil, ErrSuspended
	}
	res := &Resolved{Endpoint: ep, TargetNamespace: TargetNamespace(ep), TimestampTolerance: DefaultTimestampTolerance}
	if err := CheckTargetNamespace(ctx, r, ep); err != nil {
		return nil, err
	}
	v := ep.Spec.Verification
	if v == nil {
		v = &cardsv1alpha1.Verification{}
	}
	if err := res.verification(v); err != nil {
		return nil, err
	}
	if err := cardLabels(ep.Spec.CardLabels); err != nil {
		return nil, err
	}
	creds := &credentials{ep: ep}
	if ep.Spec.CredentialsRef != nil {
		var err error
		if creds.data, err = SecretData(ctx, r, ep.Namespace, ep.Spec.CredentialsRef.Name); err != nil {
			return nil, err
		}
	}
	if err := res.urlToken(v, creds); err != nil {
		return nil, err
	}
	if err := res.keys(creds); err != nil {
		return nil, err
	}
	unsigned := ep.Spec.Provider == cardsv1alpha1.ProviderPrepaidify || ep.Spec.Provider == cardsv1alpha1.ProviderAlchemyPay ||
		(ep.Spec.Provider == cardsv1alpha1.ProviderGeneric && ep.Spec.Generic.Signature == "None")
	if unsigned && len(res.SourcePrefixes) == 0 && !v.RequireURLToken && !v.AllowUnauthenticated {
		return nil, invalid("provider %s signs nothing: set verification.sourceCIDRs or verification.requireURLToken", ep.Spec.Provider)
	}
	if err := destinationPolicy(ep); err != nil {
		return nil, err
	}
	return res, nil
}

// cardLabels checks the labels an endpoint puts on its cards (the API schema checks them too).
func cardLabels(l map[string]cardsv1alpha1.LabelValue) error {
	for k, v := range l {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return invalid("cardLabels: key %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(string(v)); len(errs) > 0 {
			return invalid("cardLabels: value of %q: %s", k, strings.Join(errs, "; "))
		}
		if strings.HasPrefix(k, "cards.cardplane.io/") {
			return invalid("cardLabels: key %q: keys under cards.cardplane.io/ are reserved for cardplane", k)
		}
	}
	return nil
}

// verification reads the timestamp tolerance and the address lists.
func (res *Resolved) verification(v *cardsv1alpha1.Verification) error {
	if v.TimestampTolerance != nil {
		if v.TimestampTolerance.Duration <= 0 {
			return invalid("verification.timestampTolerance must be positive")
		}
		res.TimestampTolerance = v.TimestampTolerance.Duration
	}
	var err error
	if res.SourcePrefixes, err = parsePrefixes("verification.sourceCIDRs", v.SourceCIDRs); err != nil {
		return err
	}
	res.TrustedProxies, err = parsePrefixes("verification.trustedProxyCIDRs", v.TrustedProxyCIDRs)
	return err
}

// credentials is the endpoint's credentials Secret.
type credentials struct {
	ep   *cardsv1alpha1.WebhookEndpoint
	data map[string][]byte
}

// need returns a key of the credentials Secret, or the error that makes the endpoint not Ready.
func (c *credentials) need(key string) ([]byte, error) {
	val := c.data[key]
	if len(val) > 0 {
		return val, nil
	}
	if c.ep.Spec.CredentialsRef == nil {
		return nil, invalid("provider %s needs credentialsRef with key %q", c.ep.Spec.Provider, key)
	}
	return nil, &Error{Reason: cardsv1alpha1.ReasonSecretKeyMissing,
		Message: fmt.Sprintf("Secret %s/%s has no key %q", c.ep.Namespace, c.ep.Spec.CredentialsRef.Name, key)}
}

// urlToken reads the URL token of an endpoint that requires one.
func (res *Resolved) urlToken(v *cardsv1alpha1.Verification, creds *credentials) error {
	if !v.RequireURLToken {
		return nil
	}
	tok, err := creds.need(cardsv1alpha1.SecretKeyURLToken)
	if err != nil {
		return err
	}
	res.URLToken = strings.TrimSpace(string(tok))
	if len(res.URLToken) < 16 || strings.ContainsAny(res.URLToken, "/?#% ") {
		return invalid("urlToken must be at least 16 URL-safe characters")
	}
	return nil
}

// keys reads the provider's signing and encryption keys.
func (res *Resolved) keys(creds *credentials) error {
	ep := creds.ep
	var err error
	switch ep.Spec.Provider {
	case cardsv1alpha1.ProviderUPay, cardsv1alpha1.ProviderTevau:
		res.SigningKey, err = creds.need(cardsv1alpha1.SecretKeySigningKey)
	case cardsv1alpha1.ProviderBananaTech:
		if res.SigningKey, err = creds.need(cardsv1alpha1.SecretKeySigningKey); err != nil {
			return err
		}
		material := creds.data[cardsv1alpha1.SecretKeyEncryptionKey]
		if len(material) == 0 {
			material = res.SigningKey
		}
		mode := "Raw"
		if ep.Spec.BananaTech != nil && ep.Spec.BananaTech.AESKey != "" {
			mode = ep.Spec.BananaTech.AESKey
		}
		if res.EncryptionKey, err = DeriveAESKey(mode, material); err != nil {
			return invalid("bananatech AES key: %v", err)
		}
	case cardsv1alpha1.ProviderGeneric:
		if ep.Spec.Generic == nil {
			return invalid("provider generic needs spec.generic")
		}
		if ep.Spec.Generic.Signature == "None" {
			return nil
		}
		raw, err := creds.need(cardsv1alpha1.SecretKeySigningKey)
		if err != nil {
			return err
		}
		if res.SigningKey, err = StandardWebhooksKey(raw); err != nil {
			return invalid("signingKey: %v", err)
		}
	}
	return err
}

// destinationPolicy checks where the destinations may deliver: the removed allowPrivateDestinations, the
// allow-list, and that one-time codes go over HTTPS.
func destinationPolicy(ep *cardsv1alpha1.WebhookEndpoint) error {
	if ep.Spec.RemovedAllowPrivateDestinations {
		return invalid("spec.allowPrivateDestinations was removed (it opened loopback and cloud metadata addresses too): " +
			"list the private ranges your destinations need in spec.destinationPolicy.allowedCIDRs and delete allowPrivateDestinations")
	}
	if _, err := AllowedCIDRs(ep); err != nil {
		return err
	}
	for _, d := range ep.Spec.Destinations {
		if !slices.Contains(d.EventTypes, cardsv1alpha1.EventChallengeOTP) {
			continue
		}
		if !ConfidentialURL(d.URL) {
			return invalid("destination %s: challenge.otp carries one-time codes and needs an https:// url "+
				"(plain http:// only to a loopback address, for cardplane dev)", d.Name)
		}
		if d.HTTP != nil && d.HTTP.ProxyURL != "" && !strings.HasPrefix(d.URL, "https://") {
			return invalid("destination %s: challenge.otp through a proxy needs an https:// url: the proxy would carry "+
				"the one-time codes on in plain text", d.Name)
		}
	}
	return nil
}

// AllowedCIDRs are the non-public ranges the endpoint's destinations may reach (spec.destinationPolicy.allowedCIDRs).
func AllowedCIDRs(ep *cardsv1alpha1.WebhookEndpoint) ([]netip.Prefix, error) {
	if ep.Spec.DestinationPolicy == nil {
		return nil, nil
	}
	const field = "destinationPolicy.allowedCIDRs"
	prefixes, err := parsePrefixes(field, ep.Spec.DestinationPolicy.AllowedCIDRs)
	if err != nil {
		return nil, err
	}
	for _, p := range prefixes {
		if p.Addr().Is4In6() {
			return nil, invalid("%s: %q: write IPv4 ranges as IPv4", field, p)
		}
	}
	return prefixes, nil
}

// ConfidentialURL reports whether a destination URL may receive one-time codes: https://, or plain http:// to a
// loopback address (the local demo; the sender then connects to loopback only, and only with
// --allow-loopback-destinations).
func ConfidentialURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		host := u.Hostname()
		ip, err := netip.ParseAddr(host)
		return strings.EqualFold(host, "localhost") || (err == nil && ip.Unmap().IsLoopback())
	}
	return false
}

// TargetNamespace is where an endpoint writes its cards and transactions.
func TargetNamespace(ep *cardsv1alpha1.WebhookEndpoint) string {
	if ep.Spec.TargetNamespace != "" {
		return ep.Spec.TargetNamespace
	}
	return ep.Namespace
}

// CheckTargetNamespace checks that an endpoint may write into its target namespace: its own, or one that
// exists, is not being deleted, and lists the endpoint's namespace (or "*") in its accept-endpoints-from
// annotation. Consent is the target namespace's to give, as with a Gateway API ReferenceGrant: whoever may
// create an endpoint in one namespace may not thereby create cards (and take card names) in another.
func CheckTargetNamespace(ctx context.Context, r client.Reader, ep *cardsv1alpha1.WebhookEndpoint) error {
	from, target := ep.Namespace, TargetNamespace(ep)
	if target == from {
		return nil
	}
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	notPermitted := func(format string, args ...any) error {
		return &Error{Reason: cardsv1alpha1.ReasonTargetNamespaceNotPermitted, Message: fmt.Sprintf(format, args...)}
	}
	if err := r.Get(ctx, client.ObjectKey{Name: target}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return notPermitted("target namespace %s does not exist", target)
		}
		return fmt.Errorf("reading namespace %s: %w", target, err)
	}
	if ns.DeletionTimestamp != nil {
		return notPermitted("target namespace %s is being deleted", target)
	}
	if !AcceptsEndpointsFrom(ns.Annotations[cardsv1alpha1.AnnotationAcceptEndpointsFrom], from) {
		return notPermitted("namespace %s does not accept cards from endpoints of namespace %s: its annotation %s must list %s (or be \"*\")",
			target, from, cardsv1alpha1.AnnotationAcceptEndpointsFrom, from)
	}
	return nil
}

// AcceptsEndpointsFrom reports whether an accept-endpoints-from annotation's value lets endpoints of namespace
// from write into the annotated namespace.
func AcceptsEndpointsFrom(annotation, from string) bool {
	for _, entry := range strings.Split(annotation, ",") {
		if e := strings.TrimSpace(entry); e == "*" || e == from {
			return true
		}
	}
	return false
}

// SecretCache restricts the manager's Secret cache to Secrets labelled for cardplane (use it in
// cache.Options.ByObject).
var SecretCache = labels.SelectorFromSet(labels.Set{cardsv1alpha1.LabelCredentials: "true"})

// SecretData reads a Secret an endpoint or a CardEventSink names. Only Secrets labelled
// cards.cardplane.io/credentials=true are read: the manager's cache holds no other, and a Secret read another
// way (the reconciler reads from the API server) is refused here, so naming a Secret is not enough to have
// cardplane use it. A missing or unlabelled Secret is an *Error with its reason; other errors are failed reads.
func SecretData(ctx context.Context, r client.Reader, namespace, name string) (map[string][]byte, error) {
	s := &corev1.Secret{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &Error{Reason: cardsv1alpha1.ReasonSecretNotFound, Message: fmt.Sprintf(
				"Secret %s/%s not found (cardplane sees only Secrets labelled %s=true)", namespace, name, cardsv1alpha1.LabelCredentials)}
		}
		return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
	}
	if s.Labels[cardsv1alpha1.LabelCredentials] != "true" {
		return nil, &Error{Reason: cardsv1alpha1.ReasonSecretNotLabelled, Message: fmt.Sprintf(
			"Secret %s/%s is not labelled %s=true: label the Secret to let cardplane use it", namespace, name, cardsv1alpha1.LabelCredentials)}
	}
	return s.Data, nil
}

func parsePrefixes(field string, cidrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return nil, invalid("%s: %q is not a CIDR", field, c)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func invalid(format string, args ...any) error {
	return &Error{Reason: cardsv1alpha1.ReasonInvalidConfig, Message: fmt.Sprintf(format, args...)}
}

// DeriveAESKey makes BananaTech's AES key from key material; how is not documented, so it is an option.
func DeriveAESKey(mode string, material []byte) ([]byte, error) {
	var key []byte
	switch mode {
	case "", "Raw":
		key = material
	case "Hex":
		k, err := hex.DecodeString(strings.TrimSpace(string(material)))
		if err != nil {
			return nil, fmt.Errorf("not hex: %w", err)
		}
		key = k
	case "Base64":
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(material)))
		if err != nil {
			return nil, fmt.Errorf("not base64: %w", err)
		}
		key = k
	case "SHA256":
		sum := sha256.Sum256(material)
		key = sum[:]
	default:
		return nil, fmt.Errorf("unknown key mode %q", mode)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("key is %d bytes; AES needs 16, 24 or 32 (choose aesKey Hex, Base64 or SHA256 if the provider's key is not raw)", len(key))
}

// StandardWebhooksKey decodes a Standard Webhooks secret: "whsec_" followed by base64. A secret without the
// prefix is used as raw bytes, as some senders do.
func StandardWebhooksKey(secret []byte) ([]byte, error) {
	s := strings.TrimSpace(string(secret))
	if s == "" {
		return nil, errors.New("empty secret")
	}
	if rest, ok := strings.CutPrefix(s, "whsec_"); ok {
		k, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return nil, fmt.Errorf("whsec_ secret is not base64: %w", err)
		}
		if len(k) < 16 {
			return nil, errors.New("secret shorter than 16 bytes")
		}
		return k, nil
	}
	if len(s) < 16 {
		return nil, errors.New("secret shorter than 16 bytes")
	}
	return []byte(s), nil
}
