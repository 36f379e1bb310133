package webhookserver

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/decisionlog"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/money"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
	"github.com/cardplane/cardplane/webhookserver/ingest"
)

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// AuthorizationReview is the provider-neutral decision API, modelled on Kubernetes' AdmissionReview.
type AuthorizationReview struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Request    *ReviewRequest  `json:"request,omitempty"`
	Response   *ReviewResponse `json:"response,omitempty"`
}

// ReviewRequest asks for a decision. The card is named directly, or by endpoint and provider card ID.
type ReviewRequest struct {
	UID             string                                   `json:"uid"`
	Card            *cardsv1alpha1.NamespacedObjectReference `json:"card,omitempty"`
	Endpoint        *cardsv1alpha1.NamespacedObjectReference `json:"endpoint,omitempty"`
	ProviderCardID  string                                   `json:"providerCardID,omitempty"`
	TransactionID   string                                   `json:"transactionID,omitempty"`
	AuthorizationID string                                   `json:"authorizationID,omitempty"`
	Amount          json.Number                              `json:"amount"`
	Currency        string                                   `json:"currency"`
	Merchant        *cardsv1alpha1.Merchant                  `json:"merchant,omitempty"`
	Channel         string                                   `json:"channel,omitempty"`
}

// ReviewResponse is the decision.
type ReviewResponse struct {
	UID            string                     `json:"uid"`
	Allowed        bool                       `json:"allowed"`
	Reason         string                     `json:"reason,omitempty"`
	Rule           string                     `json:"rule,omitempty"`
	Mode           cardsv1alpha1.RuleMode     `json:"mode,omitempty"`
	RuleSetVersion string                     `json:"ruleSetVersion,omitempty"`
	Shadow         []cardsv1alpha1.RuleResult `json:"shadow,omitempty"`
}

const reviewAPIVersion = "cards.cardplane.io/v1alpha1"

// Review callers need this verb on cards in the card's namespace (a Role rule: apiGroups cards.cardplane.io,
// resources cards, verbs authorize).
const (
	ReviewVerb     = "authorize"
	ReviewResource = "cards"
)

// SharedTokenUser is who presents the opt-in cluster-wide token: it may decide on cards of every namespace.
const SharedTokenUser = "cardplane:shared-review-token"

// ReviewServer serves the AuthorizationReview API on its own port, inside the cluster, apart from the
// internet-facing receiver. Callers are authenticated the Kubernetes way (a ServiceAccount or user token,
// checked with a TokenReview) and may decide only on cards of namespaces where a SubjectAccessReview allows
// them the verb "authorize" on cards. Each caller has its own rate limit.
type ReviewServer struct {
	// Listen says where and how it serves (its own port and certificate).
	Listen Listen
	// Receiver holds what decisions need: the reader, the ingester, the rules, the spool, the budget.
	Receiver *Server
	// Authenticator checks callers' bearer tokens (TokenReview); Authorizer their access (SubjectAccessReview).
	Authenticator authenticator.Request
	Authorizer    authorizer.Authorizer
	// SharedToken, when set (opt-in, for demos), is a bearer token that may decide on cards of every namespace.
	SharedToken string
	// RatePerCaller and BurstPerCaller bound each caller's reviews (default 100/s, burst 200).
	RatePerCaller  rate.Limit
	BurstPerCaller int

	once     sync.Once
	limiters *limiterSet // caller name -> its rate limit
}

// NeedLeaderElection is false: every replica answers reviews.
func (rs *ReviewServer) NeedLeaderElection() bool { return false }

// Start serves until ctx ends.
func (rs *ReviewServer) Start(ctx context.Context) error {
	err := rs.Listen.serve(ctx, "review", rs.Handler())
	rs.Receiver.background.Wait()
	return err
}

// Handler routes the review API.
func (rs *ReviewServer) Handler() http.Handler {
	rs.once.Do(func() {
		rs.Receiver.init()
		rs.limiters = newLimiterSet(10_000)
		if rs.RatePerCaller <= 0 {
			rs.RatePerCaller, rs.BurstPerCaller = 100, 200
		}
	})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1alpha1/authorizationreviews", rs.serve)
	return mux
}

func (rs *ReviewServer) serve(w http.ResponseWriter, r *http.Request) {
	s := rs.Receiver
	c := &call{w: w, r: r, received: s.Now(), provider: "authorizationreview", event: "AuthorizationReview"}
	defer func() {
		requestsTotal.WithLabelValues(c.endpoint, c.provider, c.event, c.result).Inc()
		requestDuration.WithLabelValues(c.provider).Observe(time.Since(c.received).Seconds())
	}()
	if ref := rs.review(c); ref != nil {
		c.result = ref.reason
		writeRefusal(w, ref)
	}
}

// review runs the steps of one review: authenticate, limit, read, authorize, decide.
func (rs *ReviewServer) review(c *call) *refusal {
	caller, ref := rs.authenticate(c.r)
	if ref != nil {
		return ref
	}
	if !rs.limiter(caller.GetName()).Allow() {
		return refuse(http.StatusTooManyRequests, cardsv1alpha1.ReasonRateLimited, "rate limit of %s exceeded; retry", caller.GetName()).later(1)
	}
	req, amount, ref := readReview(c)
	if ref != nil {
		return ref
	}
	ctx, cancel := context.WithDeadline(c.r.Context(), c.received.Add(rs.Receiver.AuthorizationBudget))
	defer cancel()
	ep, namespace, err := rs.namespaceOf(ctx, req)
	if err != nil {
		return refuse(http.StatusServiceUnavailable, cardsv1alpha1.ReasonStoreFailed, "cannot read the endpoint: %v", err).later(1)
	}
	if ref := rs.authorize(ctx, caller, namespace, req); ref != nil {
		return ref
	}
	if a := rs.Receiver.Authorizer; a != nil && !a.Ready() {
		return errRulesNotLoaded
	}
	return rs.decide(ctx, c, req, ep, namespace, amount)
}

// authenticate finds who calls: the shared token (when enabled), else a Kubernetes token (TokenReview).
func (rs *ReviewServer) authenticate(r *http.Request) (user.Info, *refusal) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return nil, refuse(http.StatusUnauthorized, "Unauthenticated", "present a bearer token: a ServiceAccount token (TokenReview)")
	}
	if rs.SharedToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(rs.SharedToken)) == 1 {
		return &user.DefaultInfo{Name: SharedTokenUser}, nil
	}
	if rs.Authenticator == nil {
		return nil, refuse(http.StatusUnauthorized, "Unauthenticated", "missing or wrong bearer token")
	}
	res, ok, err := rs.Authenticator.AuthenticateRequest(r)
	switch {
	case err != nil && !ok:
		return nil, refuse(http.StatusUnauthorized, "Unauthenticated", "the token was not accepted")
	case !ok:
		return nil, refuse(http.StatusUnauthorized, "Unauthenticated", "the token was not accepted")
	}
	return res.User, nil
}

// limiter is the caller's token bucket.
func (rs *ReviewServer) limiter(caller string) *rate.Limiter {
	return rs.limiters.get(caller, func() *rate.Limiter { return rate.NewLimiter(rs.RatePerCaller, rs.BurstPerCaller) })
}

// namespaceOf is the namespace of the card a request names: its own, or where its endpoint writes cards.
func (rs *ReviewServer) namespaceOf(ctx context.Context, req *ReviewRequest) (*cardsv1alpha1.WebhookEndpoint, string, error) {
	if req.Card != nil {
		return nil, req.Card.Namespace, nil
	}
	ep := &cardsv1alpha1.WebhookEndpoint{}
	err := rs.Receiver.Reader.Get(ctx, client.ObjectKey{Namespace: req.Endpoint.Namespace, Name: req.Endpoint.Name}, ep)
	if client.IgnoreNotFound(err) != nil {
		return nil, "", err
	}
	if err != nil {
		return nil, req.Endpoint.Namespace, nil // an unknown endpoint: its own namespace is the one to be allowed
	}
	return ep, endpointconfig.TargetNamespace(ep), nil
}

// authorize asks whether the caller may decide on cards of namespace (SubjectAccessReview).
func (rs *ReviewServer) authorize(ctx context.Context, caller user.Info, namespace string, req *ReviewRequest) *refusal {
	if caller.GetName() == SharedTokenUser {
		return nil
	}
	attrs := authorizer.AttributesRecord{User: caller, Verb: ReviewVerb, Namespace: namespace, APIGroup: cardsv1alpha1.GroupVersion.Group,
		APIVersion: cardsv1alpha1.GroupVersion.Version, Resource: ReviewResource, ResourceRequest: true}
	if req.Card != nil {
		attrs.Name = req.Card.Name
	}
	var decision authorizer.Decision
	var err error
	if rs.Authorizer != nil {
		decision, _, err = rs.Authorizer.Authorize(ctx, attrs)
	}
	if err != nil && decision != authorizer.DecisionAllow {
		return refuse(http.StatusServiceUnavailable, cardsv1alpha1.ReasonNotReady, "cannot check access (SubjectAccessReview): %v", err).later(1)
	}
	if decision != authorizer.DecisionAllow {
		return refuse(http.StatusForbidden, "Forbidden", "%s may not %s cards in namespace %s", caller.GetName(), ReviewVerb, namespace)
	}
	return nil
}

// decide finds the card, decides, answers (flushed), then records the decision on its transaction.
func (rs *ReviewServer) decide(ctx context.Context, c *call, req *ReviewRequest, ep *cardsv1alpha1.WebhookEndpoint,
	namespace string, amount *cardsv1alpha1.Money) *refusal {
	s := rs.Receiver
	resp := &ReviewResponse{UID: req.UID}
	card, ep, err := rs.findCard(ctx, req, ep, namespace)
	if err != nil && !errors.Is(err, errUnknownCard) {
		return refuse(http.StatusServiceUnavailable, cardsv1alpha1.ReasonStoreFailed, "cannot read the card: %v", err).later(1)
	}
	var d cardsv1alpha1.AuthorizationDecision
	ar := &event.AuthorizationRequest{TransactionID: req.TransactionID, AuthorizationID: req.AuthorizationID,
		Amount: *amount, Merchant: req.Merchant, Channel: req.Channel}
	if errors.Is(err, errUnknownCard) {
		d.Outcome, d.Reason = cardsv1alpha1.DecisionDeclined, cardsv1alpha1.DecisionUnknownCard
	} else {
		c.endpoint = ep.Namespace + "/" + ep.Name
		d = s.decide(ctx, card, nil, ar)
	}
	d.LatencyMicroseconds = s.Now().Sub(c.received).Microseconds()
	resp.Allowed, resp.Reason, resp.Rule, resp.Mode = d.Outcome == cardsv1alpha1.DecisionApproved, d.Reason, d.Rule, d.Mode
	resp.RuleSetVersion, resp.Shadow = d.RuleSetVersion, d.Shadow
	c.result = strings.ToLower(string(d.Outcome))
	out, _ := json.Marshal(&AuthorizationReview{APIVersion: reviewAPIVersion, Kind: "AuthorizationReview", Response: resp})
	write(c.w, adapter.Answer{Status: http.StatusOK, ContentType: "application/json", Body: out})
	logged := card
	if logged == nil && req.Card != nil { // an unknown card: logged as the caller named it
		logged = &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: req.Card.Namespace, Name: req.Card.Name}}
	}
	s.logDecision(decisionlog.SourceReview, ep, logged, req.ProviderCardID, ar, d)
	if card != nil && req.TransactionID != "" {
		ev := &event.Event{Type: "AuthorizationReview", ID: ar.AuthorizationID, CardID: card.Spec.ProviderCardID, Authorization: ar}
		if ingest.Fit(ev) == nil {
			cfg := &endpointconfig.Resolved{Endpoint: ep, TargetNamespace: card.Namespace}
			s.afterAnswer(func() { s.recordDecision(c.r.Context(), cfg, client.ObjectKeyFromObject(ep), ev, d, c.received) })
		}
	}
	return nil
}

var errUnknownCard = errors.New("unknown card")

// readReview reads a valid AuthorizationReview request.
func readReview(c *call) (*ReviewRequest, *cardsv1alpha1.Money, *refusal) {
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, 64<<10))
	if err != nil {
		return nil, nil, refuse(http.StatusRequestEntityTooLarge, cardsv1alpha1.ReasonTooLarge, "an AuthorizationReview is larger than 64 KiB")
	}
	review := &AuthorizationReview{}
	if err := adapter.Decode(body, review); err != nil {
		return nil, nil, refuse(http.StatusBadRequest, cardsv1alpha1.ReasonMalformed, "%v", err)
	}
	req, amount, err := validReview(review)
	if err != nil {
		return nil, nil, refuse(http.StatusBadRequest, cardsv1alpha1.ReasonMalformed, "%v", err)
	}
	return req, amount, nil
}

func validReview(r *AuthorizationReview) (*ReviewRequest, *cardsv1alpha1.Money, error) {
	if r.APIVersion != reviewAPIVersion || r.Kind != "AuthorizationReview" {
		return nil, nil, fmt.Errorf("want apiVersion %s and kind AuthorizationReview", reviewAPIVersion)
	}
	req := r.Request
	switch {
	case req == nil:
		return nil, nil, errors.New("request is missing")
	case req.UID == "" || len(req.UID) > 128:
		return nil, nil, errors.New("request.uid is required (at most 128 characters)")
	case (req.Card == nil) == (req.Endpoint == nil || req.ProviderCardID == ""):
		return nil, nil, errors.New("name the card by request.card {namespace, name}, or by request.endpoint and request.providerCardID")
	case len(req.TransactionID) > 128 || len(req.AuthorizationID) > 128:
		return nil, nil, errors.New("request.transactionID and authorizationID are at most 128 characters")
	}
	amount, err := money.Major(string(req.Amount), req.Currency)
	if err != nil {
		return nil, nil, fmt.Errorf("request.amount/currency: %w", err)
	}
	if strings.HasPrefix(string(amount.Value), "-") {
		return nil, nil, errors.New("request.amount must not be negative")
	}
	return req, amount, nil
}

// findCard finds the card a review names, and its endpoint; errUnknownCard when there is none (or the card
// is not in the namespace its endpoint writes to: such a card is not the endpoint's).
func (rs *ReviewServer) findCard(ctx context.Context, req *ReviewRequest, ep *cardsv1alpha1.WebhookEndpoint,
	namespace string) (*cardsv1alpha1.Card, *cardsv1alpha1.WebhookEndpoint, error) {
	s := rs.Receiver
	var card *cardsv1alpha1.Card
	switch {
	case req.Card != nil:
		card = &cardsv1alpha1.Card{}
		if err := s.Reader.Get(ctx, client.ObjectKey{Namespace: req.Card.Namespace, Name: req.Card.Name}, card); err != nil {
			return nil, nil, unknownIfNotFound(err)
		}
	case ep == nil:
		return nil, nil, errUnknownCard
	default:
		found, err := s.Ingester.FindCard(ctx, &endpointconfig.Resolved{Endpoint: ep, TargetNamespace: namespace}, req.ProviderCardID)
		if err != nil || found == nil {
			return nil, nil, unknownIfNotFound(err)
		}
		card = found
	}
	owner := &cardsv1alpha1.WebhookEndpoint{}
	if err := s.Reader.Get(ctx, client.ObjectKey{Namespace: card.Spec.EndpointRef.Namespace, Name: card.Spec.EndpointRef.Name}, owner); err != nil {
		return nil, nil, unknownIfNotFound(err)
	}
	if endpointconfig.TargetNamespace(owner) != card.Namespace {
		return nil, nil, errUnknownCard
	}
	if err := endpointconfig.CheckTargetNamespace(ctx, s.Reader, owner); err != nil {
		// The card's namespace no longer takes the endpoint's writes: it is not the endpoint's to decide on.
		return nil, nil, unknownIfConfig(err)
	}
	return card, owner, nil
}

func unknownIfConfig(err error) error {
	if errors.As(err, new(*endpointconfig.Error)) {
		return errUnknownCard
	}
	return err
}

func unknownIfNotFound(err error) error {
	if err == nil || client.IgnoreNotFound(err) == nil {
		return errUnknownCard
	}
	return err
}
