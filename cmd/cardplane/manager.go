package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/controllers"
	"github.com/cardplane/cardplane/internal/authz"
	"github.com/cardplane/cardplane/internal/decisionlog"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/projection"
	"github.com/cardplane/cardplane/internal/rulesadmission"
	"github.com/cardplane/cardplane/internal/scheme"
	"github.com/cardplane/cardplane/webhookserver"
	"github.com/cardplane/cardplane/webhookserver/adapters"
	"github.com/cardplane/cardplane/webhookserver/ingest"
	"github.com/cardplane/cardplane/webhookserver/spool"
)

// managerOptions are the flags of `cardplane manager`; `cardplane dev` sets them itself.
type managerOptions struct {
	metricsAddr string
	// metricsSecure serves /metrics over HTTPS to authenticated, authorized callers; metricsCertDir holds its
	// certificate (empty: self-signed).
	metricsSecure  bool
	metricsCertDir string
	pprofAddr      string
	probeAddr      string
	leaderElection bool
	leaderNS       string
	webhook        webhookserver.Options
	// allowLoopback lets destinations on loopback addresses receive deliveries (cardplane dev).
	allowLoopback bool
	// review is the AuthorizationReview API's own server (its port and certificate); reviewTokenFile holds an
	// opt-in shared token.
	review          webhookserver.Listen
	reviewTokenFile string
	reviewRate      float64
	// admissionAddr and admissionCertDir are the rule-set admission webhook's server ("" or "0": off).
	admissionAddr, admissionCertDir string
	// trustedProxies are the load balancers whose X-Forwarded-For names a callback's source.
	trustedProxies []string
	// sinkAllowedCIDRs are the private ranges CardEventSinks may reach; sinks is the policy parsed from them.
	sinkAllowedCIDRs []string
	sinks            projection.SinkPolicy
	// watchNamespaces restricts what the manager watches and writes (the chart grants Roles there).
	watchNamespaces []string
	// ungoverned is the decision for a card no rule set governs.
	ungoverned    string
	spoolDir      string
	spoolMaxBytes int64
	// decisionLog is where every authorization decision is written as a JSON line: "-" stdout, a file path
	// (appended to), or "off".
	decisionLog       string
	decisionLogBuffer int
	// shutdownDelay is how long a stopping replica stays up, not ready, still receiving (see shutdownContext).
	shutdownDelay time.Duration
	// draining is set when shutdown begins; /readyz fails from then on.
	draining atomic.Bool
}

func (o *managerOptions) bind(fs *pflag.FlagSet) {
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "address of the Prometheus /metrics endpoint (0 disables it)")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true, "serve /metrics over HTTPS to callers whose bearer token the API server authenticates (TokenReview) and who may get the non-resource URL /metrics (SubjectAccessReview); false serves plain HTTP to anyone who reaches the port")
	fs.StringVar(&o.metricsCertDir, "metrics-cert-dir", "", "directory holding tls.crt and tls.key of /metrics (reloaded when they change); empty: a self-signed certificate")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "0", "address of Go's /debug/pprof profiles (0 disables them; keep it on loopback, e.g. 127.0.0.1:6060, and port-forward)")
	fs.BoolVar(&o.leaderElection, "leader-elect", false, "elect a leader among replicas for the controllers (the receiver runs on every replica)")
	fs.StringVar(&o.leaderNS, "leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's namespace)")
	fs.StringVar(&o.review.Addr, "review-bind-address", ":9444", "address of the AuthorizationReview API, apart from the receiver (0 disables it); callers present a Kubernetes token and need the verb authorize on cards of the card's namespace")
	fs.StringVar(&o.review.CertFile, "review-tls-cert-file", "", "TLS certificate of the AuthorizationReview API (PEM; default: the receiver's)")
	fs.StringVar(&o.review.KeyFile, "review-tls-key-file", "", "TLS key of the AuthorizationReview API (PEM; default: the receiver's)")
	fs.BoolVar(&o.review.PlainHTTP, "review-plain-http", false, "serve the AuthorizationReview API without TLS (only locally; implied by --webhook-plain-http without review certificates)")
	fs.StringVar(&o.admissionAddr, "admission-bind-address", ":9445", "address of the admission webhook that refuses rule-set ConfigMaps whose rules.yaml does not compile (0 disables it; the API server calls it as the webhook rule-sets.cards.cardplane.io)")
	fs.StringVar(&o.admissionCertDir, "admission-cert-dir", "/admission-tls", "directory holding the admission webhook's tls.crt and tls.key (reloaded when they change); until they exist the webhook is not served and rule-set writes go unchecked")
	fs.StringVar(&o.reviewTokenFile, "authorization-review-token-file", "", "opt-in, for demos: a file holding a bearer token that may decide on cards of every namespace")
	fs.Float64Var(&o.reviewRate, "review-rate-limit", 100, "AuthorizationReviews per second per caller (burst twice that)")
	fs.StringVar(&o.ungoverned, "ungoverned-card-decision", "decline", "decision for a card no rule set governs: decline (reason NO_RULE_SET), or approve only where every card must work without rules")
	fs.StringVar(&o.decisionLog, "decision-log", "-", "where every authorization decision is written, one JSON line each: - (stdout; the manager's own logs go to stderr), a file path (appended to), or off")
	fs.IntVar(&o.decisionLogBuffer, "decision-log-buffer", decisionlog.DefaultBuffer, "decisions that may wait for a slow decision-log output; past it, decisions are dropped from the log (never delayed) and counted in cardplane_decision_log_dropped_total")
	fs.StringVar(&o.spoolDir, "spool-dir", "/var/lib/cardplane/spool", "directory of the receiver's write-ahead spool for events the API server cannot take (empty disables it: the provider then gets 5xx during an outage)")
	fs.Int64Var(&o.spoolMaxBytes, "spool-max-bytes", 256<<20, "size bound of the spool; when full, callbacks are answered 5xx")
	fs.StringSliceVar(&o.sinkAllowedCIDRs, "sink-allowed-cidrs", nil, "private or special-purpose ranges (CIDRs) CardEventSinks may reach, such as the cluster's Kafka and NATS; public addresses are always allowed, loopback only with --allow-loopback-destinations, link-local and metadata addresses never")
	fs.BoolVar(&o.allowLoopback, "allow-loopback-destinations", false, "deliver to destinations on loopback addresses (for local development; private ranges other than loopback are opened per endpoint by spec.destinationPolicy.allowedCIDRs)")
	fs.StringVar(&o.webhook.Addr, "webhook-bind-address", ":9443", "address the provider callback receiver listens on")
	fs.StringVar(&o.webhook.TLSCertFile, "webhook-tls-cert-file", "", "TLS certificate of the receiver (PEM)")
	fs.StringVar(&o.webhook.TLSKeyFile, "webhook-tls-key-file", "", "TLS key of the receiver (PEM)")
	fs.BoolVar(&o.webhook.PlainHTTP, "webhook-plain-http", false, "serve the receiver without TLS (only behind a TLS-terminating proxy, or locally)")
	fs.Float64Var(&o.webhook.RefusedPerSource, "refused-requests-per-source", webhookserver.DefaultRefusedPerSource, "refused callbacks per second (burst 5x) a source address may send before its requests are refused unread with 429 (a flood of unsigned junk); negative disables")
	fs.StringSliceVar(&o.watchNamespaces, "watch-namespaces", nil, "namespaces to watch and write (their endpoints, Secrets, rule sets and cards); empty: every namespace")
	fs.StringSliceVar(&o.trustedProxies, "trusted-proxy-cidrs", nil, "load balancers or ingress proxies (CIDRs) whose X-Forwarded-For names the source address for --refused-requests-per-source; without them the peer address counts")
	fs.Int64Var(&o.webhook.MaxBodyBytes, "webhook-max-body-bytes", webhookserver.DefaultMaxBodyBytes, "largest callback body accepted; larger ones are answered 413")
	fs.DurationVar(&o.shutdownDelay, "shutdown-delay", 5*time.Second, "after SIGTERM, keep receiving this long while /readyz fails, so load balancers stop sending before the receiver closes (then in-flight callbacks get up to 20 s more)")
	fs.DurationVar(&o.webhook.AuthorizationBudget, "authorization-budget", 1500*time.Millisecond, "time allowed to answer a real-time authorization request (below the provider's deadline)")
}

func newManagerCommand() *cobra.Command {
	opts := &managerOptions{}
	zapOpts := zap.Options{}
	var cluster *clusterFlags
	cmd := &cobra.Command{
		Use:   "manager",
		Short: "Run the controllers and the webhook receiver (what the Deployment runs)",
		Long: `Run the controllers (on the elected leader, with --leader-elect) and the provider callback receiver (on
every replica). It connects with the kubeconfig or, in a pod without one, with the pod's service account.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
			cfg, err := cluster.clientConfig().ClientConfig()
			if err != nil {
				return fmt.Errorf("loading kubeconfig: %w", err)
			}
			if cfg.QPS == 0 {
				// As ctrl.GetConfig does: no client-side rate limit, API priority and fairness governs. The
				// client-go default (5 requests/s) would throttle the receiver's writes.
				cfg.QPS = -1
			}
			return runManager(shutdownContext(opts.shutdownDelay, &opts.draining), cfg, opts)
		},
	}
	opts.bind(cmd.Flags())
	cluster = bindClusterFlags(cmd.Flags(), "")
	// zap binds to a Go flag.FlagSet; pflag adopts its flags (--zap-log-level, --zap-devel, ...).
	zapFlags := flag.NewFlagSet("zap", flag.ContinueOnError)
	zapOpts.BindFlags(zapFlags)
	cmd.Flags().AddGoFlagSet(zapFlags)
	return cmd
}

// shutdownContext ends delay after the first SIGTERM or interrupt. Until then the replica keeps receiving
// but reports not ready (draining), because Services, ingress controllers and load balancers learn of a
// terminating pod a little late: callbacks they still send must not be refused. A second signal exits at once.
func shutdownContext(delay time.Duration, draining *atomic.Bool) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-signals
		draining.Store(true)
		ctrl.Log.WithName("setup").Info("Shutting down: not ready, still receiving", "delay", delay.String())
		select {
		case <-time.After(delay):
		case <-signals:
			os.Exit(1)
		}
		cancel()
		<-signals
		os.Exit(1)
	}()
	return ctx
}

// runManager runs the controllers and the receiver until ctx ends.
func runManager(ctx context.Context, cfg *rest.Config, opts *managerOptions) error {
	if d := strings.ToLower(opts.ungoverned); d != "decline" && d != "approve" {
		return fmt.Errorf("--ungoverned-card-decision: %q is neither decline nor approve", opts.ungoverned)
	}
	for _, c := range opts.trustedProxies {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return fmt.Errorf("--trusted-proxy-cidrs: %q is not a CIDR", c)
		}
		opts.webhook.TrustedProxies = append(opts.webhook.TrustedProxies, p.Masked())
	}
	for _, c := range opts.sinkAllowedCIDRs {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return fmt.Errorf("--sink-allowed-cidrs: %q is not a CIDR", c)
		}
		opts.sinks.AllowedCIDRs = append(opts.sinks.AllowedCIDRs, p.Masked())
	}
	setMemoryLimit()
	mgr, err := newManager(cfg, opts)
	if err != nil {
		return err
	}
	secrets := &webhookserver.SecretReader{Reader: mgr.GetClient(), Metadata: mgr.GetCache(), Direct: mgr.GetAPIReader()}
	network := &projection.Network{AllowLoopback: opts.allowLoopback}
	store := &authz.Store{}
	if err := setupControllers(ctx, mgr, secrets, network, opts.sinks, store); err != nil {
		return err
	}
	var sp *spool.Spool
	if opts.spoolDir != "" {
		if sp, err = spool.Open(opts.spoolDir, opts.spoolMaxBytes); err != nil {
			return fmt.Errorf("--spool-dir: %w", err)
		}
		defer sp.Close()
	}
	receiver, err := setupReceiver(mgr, opts, secrets, network, store, sp)
	if err != nil {
		return err
	}
	if err := setupReview(mgr, cfg, opts, receiver); err != nil {
		return err
	}
	if err := setupAdmission(mgr, opts); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("receiver", func(req *http.Request) error {
		if opts.draining.Load() {
			return errors.New("shutting down")
		}
		return receiver.Ready(req)
	}); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("rule-sets", rulesLoaded(store)); err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("Starting manager")
	return mgr.Start(ctx)
}

// metricsOptions serve /metrics as kubebuilder v4 scaffolds it: HTTPS, and only to callers the API server
// authenticates and authorizes (get on the non-resource URL /metrics), unless --metrics-secure=false.
func metricsOptions(opts *managerOptions) metricsserver.Options {
	m := metricsserver.Options{BindAddress: opts.metricsAddr}
	if opts.metricsSecure {
		m.SecureServing, m.FilterProvider, m.CertDir = true, filters.WithAuthenticationAndAuthorization, opts.metricsCertDir
		// HTTP/1.1 only: HTTP/2's rapid-reset and stream floods (CVE-2023-44487, CVE-2023-39325) are not worth
		// it for a scrape.
		m.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	return m
}

func newManager(cfg *rest.Config, opts *managerOptions) (ctrl.Manager, error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme.New(),
		Metrics:                 metricsOptions(opts),
		HealthProbeBindAddress:  opts.probeAddr,
		PprofBindAddress:        opts.pprofAddr,
		LeaderElection:          opts.leaderElection,
		LeaderElectionID:        "cardplane-controllers.cards.cardplane.io",
		LeaderElectionNamespace: opts.leaderNS,
		// The process exits as soon as the manager stops, so the lease can be handed back at once: on a
		// rollout or drain (SIGTERM) another replica takes the controllers over without waiting out the
		// lease (15 s; measured by test/node before this was set).
		LeaderElectionReleaseOnCancel: true,
		// A stopping replica finishes in-flight callbacks (20 s) and drains its spool (10 s) after the shutdown
		// delay: the chart's terminationGracePeriodSeconds leaves room for all of it.
		GracefulShutdownTimeout: ptr.To(45 * time.Second),
		// Only rule-set ConfigMaps are cached, not every ConfigMap of the cluster, and only the metadata of
		// Secrets labelled for cardplane: no other Secret is ever read (see endpointconfig).
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {Label: controllers.RuleSetCache},
			&corev1.Secret{}:    {Label: endpointconfig.SecretCache},
		}, DefaultNamespaces: watched(opts.watchNamespaces),
			// Nothing reads managedFields: the cache keeps every object without them, which bounds the
			// manager's memory per card and transaction (docs/operations.md, capacity).
			DefaultTransform: cache.TransformStripManagedFields(),
			// Every object is reconciled again this often (plus up to 10% jitter): transaction retention counts
			// on it for deletions further away than controllers.RetentionRecheck.
			SyncPeriod: ptr.To(cacheResync)},
		// Secrets are never cached whole: only their metadata is (for rotation), and webhookserver.SecretReader
		// keeps the data of the Secrets endpoints name.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	return mgr, nil
}

// setupControllers registers the reconcilers, and the caches and Secret watch the receiver reads from.
func setupControllers(ctx context.Context, mgr ctrl.Manager, secrets *webhookserver.SecretReader, network *projection.Network,
	sinks projection.SinkPolicy, store *authz.Store) error {
	if err := (&controllers.WebhookEndpointReconciler{
		Client:         mgr.GetClient(),
		Recorder:       mgr.GetEventRecorder("cardplane-controller"),
		ValidateConfig: adapters.ValidateConfig,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&controllers.CardReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("cardplane-controller"),
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&controllers.CardTransactionReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := mgr.Add(&projection.Dispatcher{Cache: mgr.GetCache(), Client: mgr.GetClient(), Secrets: secrets, Network: network,
		SinkPolicy: sinks, Recorder: mgr.GetEventRecorder("cardplane-controller"), Now: time.Now}); err != nil {
		return err
	}
	if err := webhookserver.WarmCache(ctx, mgr.GetCache()); err != nil {
		return err
	}
	if err := secrets.Watch(ctx, mgr.GetCache()); err != nil {
		return err
	}
	return (&controllers.RuleSetReconciler{Client: mgr.GetClient(), Store: store,
		Recorder: mgr.GetEventRecorder("cardplane-rules")}).SetupWithManager(mgr)
}

// setupReceiver adds the receiver and its helpers (spool replay, counter flushes) to the manager; sp may be nil.
func setupReceiver(mgr ctrl.Manager, opts *managerOptions, secrets *webhookserver.SecretReader, network *projection.Network,
	store *authz.Store, sp *spool.Spool) (*webhookserver.Server, error) {
	var err error
	counters := &webhookserver.Counters{}
	receiver := &webhookserver.Server{
		Options:  opts.webhook,
		Reader:   secrets,
		Ingester: &ingest.Ingester{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()},
		Adapters: adapters.All(),
		Recorder: mgr.GetEventRecorder("cardplane-receiver"),
		Counters: counters,
		Authorizer: &authz.Authorizer{Store: store, Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Now: time.Now,
			Ungoverned: ungoverned(opts.ungoverned)},
		// Every replica forwards the codes it receives: they are never stored for a leader to pick up.
		Challenges: &projection.ChallengeForwarder{Reader: secrets, Network: network, Sinks: opts.sinks},
	}
	receiver.Spool = sp
	if receiver.Decisions, err = decisionLog(opts); err != nil {
		return nil, err
	}
	if receiver.Decisions != nil {
		receiver.Decisions.WaitFor = append(receiver.Decisions.WaitFor, receiver)
		if err := mgr.Add(receiver.Decisions); err != nil {
			return nil, err
		}
	}
	if err := mgr.Add(receiver); err != nil {
		return nil, err
	}
	if sp != nil {
		if err := mgr.Add(&webhookserver.SpoolReplayer{Spool: sp, Reader: mgr.GetClient(), Ingester: receiver.Ingester, Interval: time.Second,
			Recorder: mgr.GetEventRecorder("cardplane-receiver"), Receiver: receiver}); err != nil {
			return nil, err
		}
	}
	if err := mgr.Add(&webhookserver.CounterFlusher{Counters: counters, Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Interval: time.Second}); err != nil {
		return nil, err
	}
	return receiver, nil
}

// decisionLog opens the decision log --decision-log names; nil when it is off.
func decisionLog(opts *managerOptions) (*decisionlog.Logger, error) {
	switch opts.decisionLog {
	case "off", "":
		return nil, nil
	case "-":
		return decisionlog.New(os.Stdout, opts.decisionLogBuffer), nil
	}
	f, err := os.OpenFile(opts.decisionLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--decision-log: %w", err)
	}
	return decisionlog.New(f, opts.decisionLogBuffer), nil
}

// setupReview adds the AuthorizationReview API on its own port: callers authenticated with TokenReview and
// authorized per namespace with SubjectAccessReview (and the shared token, where one is configured).
func setupReview(mgr ctrl.Manager, cfg *rest.Config, opts *managerOptions, receiver *webhookserver.Server) error {
	if opts.review.Addr == "" || opts.review.Addr == "0" {
		return nil
	}
	l := opts.review
	if l.CertFile == "" && l.KeyFile == "" {
		// The receiver's certificate, or, where the receiver serves plain HTTP (TLS ended before the pod),
		// plain HTTP as well.
		l.CertFile, l.KeyFile = opts.webhook.TLSCertFile, opts.webhook.TLSKeyFile
		l.PlainHTTP = l.PlainHTTP || opts.webhook.PlainHTTP
	}
	authn, authzr, err := webhookserver.KubernetesAccess(cfg)
	if err != nil {
		return err
	}
	rs := &webhookserver.ReviewServer{Listen: l, Receiver: receiver, Authenticator: authn, Authorizer: authzr,
		RatePerCaller: rate.Limit(opts.reviewRate), BurstPerCaller: int(2 * opts.reviewRate)}
	if opts.reviewTokenFile != "" {
		token, err := os.ReadFile(opts.reviewTokenFile)
		if err != nil {
			return fmt.Errorf("--authorization-review-token-file: %w", err)
		}
		rs.SharedToken = strings.TrimSpace(string(token))
	}
	return mgr.Add(rs)
}

// setupAdmission adds the rule-set admission webhook on its own port. It is not a readiness check: the
// registration fails open, and a replica that answers authorizations must not go unready for it.
func setupAdmission(mgr ctrl.Manager, opts *managerOptions) error {
	if opts.admissionAddr == "" || opts.admissionAddr == "0" {
		return nil
	}
	srv, err := rulesadmission.NewServer(opts.admissionAddr, opts.admissionCertDir)
	if err != nil {
		return fmt.Errorf("--admission-bind-address, --admission-cert-dir: %w", err)
	}
	return mgr.Add(srv)
}

// rulesLoaded is the readiness check of the rule sets: a replica answers no decision before its first sync.
func rulesLoaded(store *authz.Store) healthz.Checker {
	return func(*http.Request) error {
		if !store.Synced() {
			return errors.New("rule sets are not loaded yet")
		}
		return nil
	}
}

// ungoverned is the configured decision for cards no rule set governs; anything but "approve" declines.
func ungoverned(flag string) cardsv1alpha1.DecisionOutcome {
	if strings.EqualFold(flag, "approve") {
		return cardsv1alpha1.DecisionApproved
	}
	return cardsv1alpha1.DecisionDeclined
}

// watched is the cache's namespaces: nil (every namespace) unless --watch-namespaces names some.
func watched(namespaces []string) map[string]cache.Config {
	if len(namespaces) == 0 {
		return nil
	}
	out := map[string]cache.Config{}
	for _, ns := range namespaces {
		if ns = strings.TrimSpace(ns); ns != "" {
			out[ns] = cache.Config{}
		}
	}
	return out
}

// setMemoryLimit gives the Go runtime a soft memory limit of 90% of the container's (its cgroup's) memory
// limit, unless GOMEMLIMIT is set or AUTOMEMLIMIT=off. Without one the heap may grow to twice what is live
// before a collection, so a pod sized for its cache would be OOM-killed at its first burst
// (docs/operations.md, capacity).
func setMemoryLimit() {
	limit, err := memlimit.Set()
	log := ctrl.Log.WithName("setup")
	switch {
	case err != nil:
		log.Info("No Go memory limit from the cgroup", "error", err.Error())
	case limit < math.MaxInt64:
		log.Info("Go memory limit", "bytes", limit)
	}
}

// cacheResync is the cache's SyncPeriod (see newManager).
const cacheResync = 10 * time.Hour
