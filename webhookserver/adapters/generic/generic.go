// Package generic connects a provider without a built-in adapter. Callbacks are verified per the Standard
// Webhooks spec (https://www.standardwebhooks.com): headers webhook-id, webhook-timestamp (epoch seconds, within
// verification.timestampTolerance) and webhook-signature, a space-separated list of
// "v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>", any of which may match; the key is the
// "whsec_" secret endpointconfig decodes. DeliveryID is webhook-id. With signature None nothing is checked here
// and the receiver relies on verification.sourceCIDRs or requireURLToken.
//
// Everything about the provider's payloads is unknown to this package: the endpoint's GenericMapping says it,
// and package mapping (which the reconciler also uses to refuse a bad mapping at apply time) compiles and
// evaluates it. Mappings are compiled once per endpoint UID and generation and cached in the Adapter, in an LRU
// of at most MappingCacheSize endpoints (an evicted one is compiled again on its next callback). The ack is
// {"received":true} with 200, as Standard Webhooks senders expect any 2xx.
package generic

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/lru"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/adapters/generic/mapping"
)

// Standard Webhooks headers.
const (
	HeaderID        = mapping.HeaderID
	HeaderTimestamp = mapping.HeaderTimestamp
	HeaderSignature = "webhook-signature"
)

var (
	_ adapter.Adapter         = (*Adapter)(nil)
	_ adapter.ConfigValidator = (*Adapter)(nil)
	_ adapter.Encoder         = Encode
)

// Standard Webhooks consumers answer 2xx; the body is informative only.
var ack = adapter.JSON(`{"received":true}`)

// MappingCacheSize bounds the compiled mappings an Adapter keeps: one per generic endpoint receiving callbacks.
// Endpoints are few, but every UID ever seen (deleted and re-created endpoints, a churning test cluster) would
// otherwise stay in memory for the life of the process.
const MappingCacheSize = 512

// Adapter is the generic adapter. Its zero value is ready; it caches compiled mappings, so use one
// *Adapter for all requests (it is safe for concurrent use) and do not copy it.
type Adapter struct {
	once  sync.Once
	cache *lru.Cache // types.UID -> *compiled, at most MappingCacheSize
}

type compiled struct {
	generation int64
	spec       *cardsv1alpha1.GenericMapping // a copy, to notice in-memory endpoints changed without a new generation
	mapping    *mapping.Mapping
	err        error
}

// Decode verifies the signature (unless the mapping says None), then maps the body.
func (a *Adapter) Decode(req *adapter.Request) (*adapter.Result, error) {
	ep := req.Endpoint
	if ep == nil || ep.Endpoint == nil || ep.Endpoint.Spec.Generic == nil {
		return nil, configError("the endpoint has no generic mapping")
	}
	gm := ep.Endpoint.Spec.Generic
	replayKey := strings.TrimSpace(req.Header.Get(HeaderID))
	// Anything but an explicit None verifies, so a typo never turns verification off.
	if gm.Signature != mapping.SignatureNone {
		if err := verify(ep, req.Header, req.Body, req.Received); err != nil {
			return nil, err
		}
	}
	m, err := a.mapping(ep.Endpoint)
	if err != nil {
		return nil, configError("%v", err)
	}
	var body any
	if err := adapter.Decode(req.Body, &body); err != nil {
		return nil, err
	}
	d, err := m.Decode(body, headerMap(req.Header))
	if err != nil {
		return nil, adapter.Malformed("%v", err)
	}
	return &adapter.Result{EventType: d.EventType, Unknown: d.Unknown, Events: d.Events, DeliveryID: replayKey, Ack: ack}, nil
}

// configError is a mapping the reconciler should have refused; 503 makes the provider retry after it is fixed.
func configError(format string, args ...any) *adapter.Rejection {
	return &adapter.Rejection{Status: http.StatusServiceUnavailable, Reason: cardsv1alpha1.ReasonInvalidConfig,
		Message: fmt.Sprintf(format, args...)}
}

// mapping returns the endpoint's compiled mapping, compiling it on first use of each generation.
func (a *Adapter) mapping(ep *cardsv1alpha1.WebhookEndpoint) (*mapping.Mapping, error) {
	c := a.cached(ep.UID, func(c *compiled) bool {
		return c.generation == ep.Generation && reflect.DeepEqual(c.spec, ep.Spec.Generic)
	}, func() *compiled {
		m, err := mapping.Compile(ep.Spec.Generic)
		return &compiled{generation: ep.Generation, spec: ep.Spec.Generic.DeepCopy(), mapping: m, err: err}
	})
	return c.mapping, c.err
}

// mappings is the LRU of compiled mappings, made on first use so the zero Adapter is ready.
func (a *Adapter) mappings() *lru.Cache {
	a.once.Do(func() { a.cache = lru.New(MappingCacheSize) })
	return a.cache
}

// cached returns the cached entry of key if current says it still is, else compiles one and caches it (evicting
// the least recently used entry beyond MappingCacheSize).
func (a *Adapter) cached(key types.UID, current func(*compiled) bool, compile func() *compiled) *compiled {
	if v, ok := a.mappings().Get(key); ok {
		if c := v.(*compiled); current(c) {
			return c
		}
	}
	c := compile()
	a.mappings().Add(key, c)
	return c
}

// ValidateConfig compiles the endpoint's mapping, so a bad one makes the endpoint InvalidConfig at apply time
// with the rule and field named.
func (a *Adapter) ValidateConfig(ep *cardsv1alpha1.WebhookEndpoint) error {
	if ep.Spec.Generic == nil {
		return errors.New("provider generic needs spec.generic")
	}
	_, err := mapping.Compile(ep.Spec.Generic)
	return err
}

// Forget drops the cached mapping of a deleted endpoint.
func (a *Adapter) Forget(uid types.UID) { a.mappings().Remove(uid) }

func verify(ep *endpointconfig.Resolved, h http.Header, body []byte, now time.Time) error {
	id, ts := strings.TrimSpace(h.Get(HeaderID)), strings.TrimSpace(h.Get(HeaderTimestamp))
	sigs := strings.Fields(strings.Join(h.Values(HeaderSignature), " "))
	if id == "" || ts == "" || len(sigs) == 0 {
		return adapter.Unauthorized(cardsv1alpha1.ReasonInvalidSignature, "missing %s, %s or %s header", HeaderID, HeaderTimestamp, HeaderSignature)
	}
	if len(ep.SigningKey) == 0 {
		return adapter.Unauthorized(cardsv1alpha1.ReasonInvalidSignature, "the endpoint has no signing key")
	}
	want := sign(ep.SigningKey, id, ts, body)
	ok := false
	for _, s := range sigs {
		version, b64, found := strings.Cut(s, ",")
		if !found || version != "v1" {
			continue // other schemes (v1a asymmetric) are not configured here
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && adapter.Equal(got, want) {
			ok = true
		}
	}
	if !ok {
		return adapter.Unauthorized(cardsv1alpha1.ReasonInvalidSignature, "no v1 entry of %s matches the body", HeaderSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return adapter.Malformed("%s %q is not epoch seconds", HeaderTimestamp, ts)
	}
	return adapter.CheckTimestamp(time.Unix(sec, 0), now, ep.TimestampTolerance)
}

func sign(key []byte, id, ts string, body []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	return mac.Sum(nil)
}

// Encode sends a payload as a Standard Webhooks sender does: a fresh random webhook-id per call (retries of
// one message would keep theirs), webhook-timestamp in seconds and a v1 signature. With signature None the id
// and timestamp headers are still sent, unsigned.
func Encode(ep *endpointconfig.Resolved, payload []byte, now time.Time) (http.Header, []byte, error) {
	var raw [15]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, nil, err
	}
	id := "msg_" + strings.ToLower(base32.StdEncoding.EncodeToString(raw[:]))
	ts := strconv.FormatInt(now.Unix(), 10)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, ts)
	if ep.Endpoint == nil || ep.Endpoint.Spec.Generic == nil || ep.Endpoint.Spec.Generic.Signature != mapping.SignatureNone {
		if len(ep.SigningKey) == 0 {
			return nil, nil, fmt.Errorf("the endpoint has no signing key")
		}
		h.Set(HeaderSignature, "v1,"+base64.StdEncoding.EncodeToString(sign(ep.SigningKey, id, ts, payload)))
	}
	return h, payload, nil
}

func headerMap(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, vs := range h {
		if len(vs) > 0 {
			out[strings.ToLower(k)] = vs[0]
		}
	}
	return out
}
