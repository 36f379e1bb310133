package webhookserver

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	authenticationv1 "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationv1 "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
)

// KubernetesAccess builds the review API's authenticator (TokenReview) and authorizer (SubjectAccessReview)
// from the API server's delegating ones, with their caches (a caller's decision is cached a little, so a
// burst of reviews costs one check) and retries, as controller-runtime's metrics filter does.
func KubernetesAccess(cfg *rest.Config) (authenticator.Request, authorizer.Authorizer, error) {
	authn, err := authenticationv1.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	authzc, err := authorizationv1.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	backoff := &wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}
	a, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous:                &apiserver.AnonymousAuthConfig{Enabled: false},
		CacheTTL:                 time.Minute,
		TokenAccessReviewClient:  authn,
		TokenAccessReviewTimeout: 10 * time.Second,
		WebhookRetryBackoff:      backoff,
	}.New()
	if err != nil {
		return nil, nil, fmt.Errorf("the review API's authenticator: %w", err)
	}
	z, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: authzc,
		AllowCacheTTL:             time.Minute,
		DenyCacheTTL:              10 * time.Second,
		WebhookRetryBackoff:       backoff,
	}.New()
	if err != nil {
		return nil, nil, fmt.Errorf("the review API's authorizer: %w", err)
	}
	return a, z, nil
}
