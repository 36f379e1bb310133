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
	"time"

	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/money"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
	"github.com/cardplane/cardplane/webhookserver/ingest"
)

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

func (s *Server) serveReview(w http.ResponseWriter, r *http.Request) {
	c := &call{w: w, r: r, received: s.Now(), provider: "authorizationreview", event: "AuthorizationReview"}
	defer func() {
		requestsTotal.WithLabelValues(c.endpoint, c.provider, c.event, c.result).Inc()
		requestDuration.WithLabelValues(c.provider).Observe(time.Since(c.received).Seconds())
	}()
	req, amount, ref := s.readReview(c)
	if ref == nil {
		ref = s.review(c, req, amount)
	}
	if ref != nil {
		c.result = ref.reason
		writeRefusal(w, ref)
	}
}

// readReview authenticates the caller and reads a valid AuthorizationReview request.
func (s *Server) readReview(c *call) (*ReviewRequest, *cardsv1alpha1.Money, *refusal) {
	if s.ReviewToken == "" {
		return nil, nil, refuse(http.StatusNotFound, cardsv1alpha1.ReasonNotFound, "the AuthorizationReview API is not enabled (--authorization-review-token-file)")
	}
	token, ok := strings.CutPrefix(c.r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(s.ReviewToken)) != 1 {
		return nil, nil, refuse(http.StatusUnauthorized, "InvalidToken", "missing or wrong bearer token")
	}
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

// review decides one request and answers it.
func (s *Server) review(c *call, req *ReviewRequest, amount *cardsv1alpha1.Money) *refusal {
	ctx, cancel := context.WithTimeout(c.r.Context(), s.AuthorizationBudget)
	defer cancel()
	resp := &ReviewResponse{UID: req.UID}
	card, ep, err := s.reviewCard(ctx, req)
	switch {
	case errors.Is(err, errUnknownCard):
		resp.Reason = cardsv1alpha1.DecisionUnknownCard
		c.result = "declined"
	case err != nil:
		return refuse(http.StatusServiceUnavailable, cardsv1alpha1.ReasonStoreFailed, "cannot read the card: %v", err).later(1)
	default:
		c.endpoint = ep.Namespace + "/" + ep.Name
		ar := &event.AuthorizationRequest{TransactionID: req.TransactionID, AuthorizationID: req.AuthorizationID,
			Amount: *amount, Merchant: req.Merchant, Channel: req.Channel}
		d := cardsv1alpha1.AuthorizationDecision{RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionApproved, Reason: cardsv1alpha1.DecisionNoRuleSet}}
		if s.Authorizer != nil {
			d = s.Authorizer.Decide(ctx, card, transaction(ar))
		}
		d.LatencyMicroseconds = s.Now().Sub(c.received).Microseconds()
		resp.Allowed, resp.Reason, resp.Rule, resp.Mode = d.Outcome == cardsv1alpha1.DecisionApproved, d.Reason, d.Rule, d.Mode
		resp.RuleSetVersion, resp.Shadow = d.RuleSetVersion, d.Shadow
		c.result = strings.ToLower(string(d.Outcome))
		if req.TransactionID != "" {
			// The record is written after the answer, so it never delays the decision.
			go s.recordReview(ep, card, ar, d)
		}
	}
	out, _ := json.Marshal(&AuthorizationReview{APIVersion: reviewAPIVersion, Kind: "AuthorizationReview", Response: resp})
	write(c.w, adapter.Answer{Status: http.StatusOK, ContentType: "application/json", Body: out})
	return nil
}

var errUnknownCard = errors.New("unknown card")

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

// reviewCard finds the card a review names and its endpoint.
func (s *Server) reviewCard(ctx context.Context, req *ReviewRequest) (*cardsv1alpha1.Card, *cardsv1alpha1.WebhookEndpoint, error) {
	card := &cardsv1alpha1.Card{}
	if req.Card != nil {
		if err := s.Reader.Get(ctx, client.ObjectKey{Namespace: req.Card.Namespace, Name: req.Card.Name}, card); err != nil {
			if client.IgnoreNotFound(err) == nil {
				return nil, nil, errUnknownCard
			}
			return nil, nil, err
		}
	} else {
		ep := &cardsv1alpha1.WebhookEndpoint{}
		if err := s.Reader.Get(ctx, client.ObjectKey{Namespace: req.Endpoint.Namespace, Name: req.Endpoint.Name}, ep); err != nil {
			if client.IgnoreNotFound(err) == nil {
				return nil, nil, errUnknownCard
			}
			return nil, nil, err
		}
		ns := ep.Spec.TargetNamespace
		if ns == "" {
			ns = ep.Namespace
		}
		found, err := s.Ingester.FindCard(ctx, &endpointconfig.Resolved{Endpoint: ep, TargetNamespace: ns}, req.ProviderCardID)
		if err != nil {
			return nil, nil, err
		}
		if found == nil {
			return nil, nil, errUnknownCard
		}
		card = found
	}
	ep := &cardsv1alpha1.WebhookEndpoint{}
	if err := s.Reader.Get(ctx, client.ObjectKey{Namespace: card.Spec.EndpointRef.Namespace, Name: card.Spec.EndpointRef.Name}, ep); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return nil, nil, errUnknownCard
		}
		return nil, nil, err
	}
	return card, ep, nil
}

// recordReview writes the decision to the transaction (created pending when first seen), in the background.
func (s *Server) recordReview(ep *cardsv1alpha1.WebhookEndpoint, card *cardsv1alpha1.Card, ar *event.AuthorizationRequest, d cardsv1alpha1.AuthorizationDecision) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := &endpointconfig.Resolved{Endpoint: ep, TargetNamespace: card.Namespace}
	ev := &event.Event{Type: "AuthorizationReview", ID: ar.AuthorizationID, CardID: card.Spec.ProviderCardID, Authorization: ar}
	if err := ingest.Fit(ev); err != nil {
		return
	}
	out, err := s.Ingester.Apply(ctx, cfg, ev, s.Now())
	if err == nil && out.Transaction != nil {
		err = s.Ingester.RecordDecision(ctx, out.Transaction, d, s.Now())
	}
	if err != nil {
		logf.FromContext(ctx).Error(err, "Recording an AuthorizationReview decision failed", "card", klog.KObj(card))
	}
}
