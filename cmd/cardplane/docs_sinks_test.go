//go:build !nodev

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/config"
	"github.com/cardplane/cardplane/internal/scheme"
	"github.com/cardplane/cardplane/internal/testenv"
)

// TestSinksGuide runs the blocks of docs/operations.md "A sink, end to end" marked <!-- sinks -->, unchanged,
// in one bash, against a real API server with the manager running in-process as `cardplane dev` runs it, and
// an embedded NATS server with JetStream as the team's NATS; then a card state written as the receiver writes
// it must arrive in the team's stream.
func TestSinksGuide(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds kube-apiserver and etcd")
	}
	blocks := testenv.MarkedBlocks(t, filepath.Join(testenv.RepoRoot(), "docs", "operations.md"), "<!-- sinks -->")
	if len(blocks) != 3 {
		t.Fatalf("want 3 <!-- sinks --> blocks (create, wait, replay), found %d", len(blocks))
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "cardplane"), ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	const token = "team-a-s3cret-token"
	natsURL, js := startTeamNATS(t, token)
	startGuideManager(t, env.Config)

	script := strings.Join(blocks, "\n")
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig, "PATH="+bin+":"+assets+":"+os.Getenv("PATH"),
		"NATS_URL="+natsURL, "NATS_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the <!-- sinks --> blocks failed: %v\n%s", err, out)
	}
	for _, want := range []string{"cardeventsink.cards.cardplane.io/orders-nats condition met", "orders-nats"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the blocks' output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("the <!-- sinks --> blocks:\n%s", out)

	// The receiver writes a card of team-a labelled team: orders.
	ctx := context.Background()
	card := &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "orders-uc1",
		Labels: map[string]string{"team": "orders"}},
		Spec: cardsv1alpha1.CardSpec{EndpointRef: cardsv1alpha1.NamespacedObjectReference{Namespace: "team-a", Name: "orders"},
			Provider: cardsv1alpha1.ProviderUPay, ProviderCardID: "UC1"}}
	if err := env.Client.Create(ctx, card); err != nil {
		t.Fatal(err)
	}
	before := card.DeepCopy()
	card.Status.Phase = cardsv1alpha1.CardFrozen
	card.Status.StateSequence = 1
	if err := env.Client.Status().Patch(ctx, card, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}

	wantID := fmt.Sprintf("%s-1", card.UID)
	cons, err := js.OrderedConsumer(ctx, "TEAM_A_CARDS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"team-a.cards.card.updated"}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var seen []string
	for time.Now().Before(deadline) {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		id := msg.Headers().Get(jetstream.MsgIDHeader)
		seen = append(seen, id)
		if id == wantID {
			if got := msg.Headers().Get("ce-type"); got != "io.cardplane.card.updated" {
				t.Errorf("ce-type %q, want io.cardplane.card.updated", got)
			}
			if !strings.Contains(string(msg.Data()), `"phase":"Frozen"`) {
				t.Errorf("the message is not the Frozen state: %s", msg.Data())
			}
			return
		}
	}
	sink := &cardsv1alpha1.CardEventSink{}
	_ = env.Client.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "orders-nats"}, sink)
	t.Fatalf("the stream has no message with Nats-Msg-Id %s on team-a.cards.card.updated (seen %v); sink status %+v", wantID, seen, sink.Status)
}

// startTeamNATS runs "the team's NATS": JetStream on loopback, a token required, the stream TEAM_A_CARDS on
// team-a.cards.>. It returns the URL and an admin JetStream handle.
func startTeamNATS(t *testing.T, token string) (string, jetstream.JetStream) {
	t.Helper()
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		Authorization: token, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.Token(token))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateStream(context.Background(), jetstream.StreamConfig{Name: "TEAM_A_CARDS",
		Subjects: []string{"team-a.cards.>"}, Duplicates: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	return srv.ClientURL(), js
}

// startGuideManager runs the manager in-process with what `cardplane dev` sets that matters here: loopback
// destinations allowed, no spool, listeners on loopback or off. Its log is shown when the test fails.
func startGuideManager(t *testing.T, cfg *rest.Config) {
	t.Helper()
	logs := &lockedBuffer{}
	ctrl.SetLogger(zap.New(zap.WriteTo(logs), zap.UseDevMode(true)))
	opts := &managerOptions{}
	fs := pflag.NewFlagSet("manager", pflag.ContinueOnError)
	opts.bind(fs)
	if err := fs.Parse([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0", "--webhook-bind-address=" + freeAddr(t),
		"--webhook-plain-http", "--review-bind-address=0", "--admission-bind-address=0", "--spool-dir=", "--decision-log=off",
		"--allow-loopback-destinations"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runManager(ctx, rest.CopyConfig(cfg), opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("the manager did not stop within 30s")
		}
		if t.Failed() {
			t.Logf("manager log:\n%s", logs)
		}
	})
}

// TestSinkRBACExamples applies config/samples/rbac to a real API server (envtest's authorizes with RBAC) and
// checks the platform/app split by impersonation: the app team manages its sinks and reads its cards, and
// is refused a sink in another namespace and any change to a WebhookEndpoint; the platform team may do both.
func TestSinkRBACExamples(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds kube-apiserver and etcd")
	}
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	admin := env.Client
	for _, ns := range []string{"team-a", "team-b"} {
		if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(env.Kubectl, "--kubeconfig", env.Kubeconfig, "apply", "-k",
		filepath.Join(testenv.RepoRoot(), "config", "samples", "rbac")).CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply -k config/samples/rbac: %v\n%s", err, out)
	}
	aggregateClusterRole(t, admin, "cardplane-platform")

	// A WebhookEndpoint of the platform team in team-a (the sample UPay one).
	var endpoint *cardsv1alpha1.WebhookEndpoint
	samples, err := config.Samples()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range samples {
		if s.Object.GetKind() == "WebhookEndpoint" && s.Object.GetName() == "upay-main" {
			endpoint = &cardsv1alpha1.WebhookEndpoint{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(s.Object.Object, endpoint); err != nil {
				t.Fatal(err)
			}
		}
	}
	if endpoint == nil {
		t.Fatal("no sample WebhookEndpoint upay-main")
	}
	endpoint.Namespace = "team-a"
	if err := admin.Create(ctx, endpoint.DeepCopy()); err != nil {
		t.Fatal(err)
	}

	team := impersonate(t, env.Config, "alice", "team-a")
	platform := impersonate(t, env.Config, "bob", "platform-team")
	newSink := func(ns, name string) *cardsv1alpha1.CardEventSink {
		return &cardsv1alpha1.CardEventSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: cardsv1alpha1.CardEventSinkSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "orders"}},
				Sink: cardsv1alpha1.SinkSpec{NATS: &cardsv1alpha1.NATSSink{URLs: []string{"nats://nats.example.com:4222"}, SubjectPrefix: "team-a.cards"}}}}
	}
	allowed := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: refused: %v", what, err)
		}
	}
	forbidden := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: want Forbidden, got %v", what, err)
		}
	}

	// The app team, in its namespace.
	sink := newSink("team-a", "orders")
	allowed("app team creates a CardEventSink in team-a", team.Create(ctx, sink))
	sink.Spec.EventTypes = []cardsv1alpha1.DestinationEventType{cardsv1alpha1.EventCardUpdated}
	allowed("app team updates its CardEventSink", team.Update(ctx, sink))
	allowed("app team lists cards in team-a", team.List(ctx, &cardsv1alpha1.CardList{}, client.InNamespace("team-a")))
	allowed("app team lists cardtransactions in team-a", team.List(ctx, &cardsv1alpha1.CardTransactionList{}, client.InNamespace("team-a")))
	allowed("app team lists cardholders in team-a", team.List(ctx, &cardsv1alpha1.CardHolderList{}, client.InNamespace("team-a")))
	allowed("app team creates a sink credentials Secret in team-a", team.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "orders-nats", Labels: map[string]string{"cards.cardplane.io/credentials": "true"}},
		StringData: map[string]string{"token": "t"}}))
	canI(t, team, "get", "cardeventsinks", "status", "team-a", true)
	canI(t, team, "update", "cardeventsinks", "status", "team-a", false)
	canI(t, team, "list", "secrets", "", "team-a", false)

	// ... and not elsewhere, nor on endpoints.
	forbidden("app team creates a CardEventSink in team-b", team.Create(ctx, newSink("team-b", "orders")))
	forbidden("app team lists cards in team-b", team.List(ctx, &cardsv1alpha1.CardList{}, client.InNamespace("team-b")))
	ep := &cardsv1alpha1.WebhookEndpoint{}
	forbidden("app team reads the WebhookEndpoint", team.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "upay-main"}, ep))
	if err := admin.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "upay-main"}, ep); err != nil {
		t.Fatal(err)
	}
	ep.Spec.Destinations = nil
	forbidden("app team edits the WebhookEndpoint", team.Update(ctx, ep.DeepCopy()))
	forbidden("app team patches the WebhookEndpoint", team.Patch(ctx, ep.DeepCopy(),
		client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"destinations":null}}`))))
	forbidden("app team deletes the WebhookEndpoint", team.Delete(ctx, ep.DeepCopy()))
	other := endpoint.DeepCopy()
	other.Name = "upay-team-a"
	forbidden("app team creates a WebhookEndpoint", team.Create(ctx, other))
	allowed("app team deletes its CardEventSink", team.Delete(ctx, sink))

	// The platform team, everywhere.
	other.Namespace = "team-b"
	allowed("platform team creates a WebhookEndpoint in team-b", platform.Create(ctx, other))
	allowed("platform team edits the WebhookEndpoint in team-a", platform.Update(ctx, ep.DeepCopy()))
	allowed("platform team creates a CardEventSink in team-b", platform.Create(ctx, newSink("team-b", "audit")))
	allowed("platform team lists every CardEventSink", platform.List(ctx, &cardsv1alpha1.CardEventSinkList{}))
	allowed("platform team lists every card", platform.List(ctx, &cardsv1alpha1.CardList{}))
}

// aggregateClusterRole does what kube-controller-manager's clusterrole-aggregation controller does (envtest
// runs no controller manager): the rules of the ClusterRoles its aggregationRule selects become its own.
func aggregateClusterRole(t *testing.T, c client.Client, name string) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.ClusterRole{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, role); err != nil {
		t.Fatal(err)
	}
	if role.AggregationRule == nil {
		t.Fatalf("ClusterRole %s has no aggregationRule", name)
	}
	var rules []rbacv1.PolicyRule
	for _, sel := range role.AggregationRule.ClusterRoleSelectors {
		s, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			t.Fatal(err)
		}
		parts := &rbacv1.ClusterRoleList{}
		if err := c.List(ctx, parts, client.MatchingLabelsSelector{Selector: s}); err != nil {
			t.Fatal(err)
		}
		for _, p := range parts.Items {
			if p.Name != name {
				rules = append(rules, p.Rules...)
			}
		}
	}
	if len(rules) == 0 {
		t.Fatalf("no ClusterRole is labelled for %s's aggregationRule", name)
	}
	role.Rules = rules
	if err := c.Update(ctx, role); err != nil {
		t.Fatal(err)
	}
}

// impersonate is a client that acts as user in group, through the admin's impersonation right.
func impersonate(t *testing.T, cfg *rest.Config, user, group string) client.Client {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{group, "system:authenticated"}}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// canI asks the API server, as c, whether it may verb resource (of cards.cardplane.io, or core Secrets).
func canI(t *testing.T, c client.Client, verb, resource, subresource, ns string, want bool) {
	t.Helper()
	group := cardsv1alpha1.GroupVersion.Group
	if resource == "secrets" {
		group = ""
	}
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: group, Resource: resource, Subresource: subresource}}}
	if err := c.Create(context.Background(), review); err != nil {
		t.Fatal(err)
	}
	if review.Status.Allowed != want {
		t.Errorf("may %s %s/%s in %s: %v, want %v (%s)", verb, resource, subresource, ns, review.Status.Allowed, want, review.Status.Reason)
	}
}
