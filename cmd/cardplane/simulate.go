package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/config"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/scheme"
	"github.com/cardplane/cardplane/webhookserver/adapters"
)

// simulateOptions are the flags of `cardplane simulate`.
type simulateOptions struct {
	endpoint string
	file     string
	example  string
	list     bool
	url      string
	timeout  time.Duration
	cacert   string
	cluster  *clusterFlags
}

// newSimulateCommand is a provider simulator: it signs (or encrypts) a plaintext payload with the endpoint's
// own credentials, exactly as the provider would, and posts it to the receiver. What providers' sandboxes do.
func newSimulateCommand() *cobra.Command {
	o := &simulateOptions{}
	cmd := &cobra.Command{
		Use:   "simulate --endpoint [NAMESPACE/]NAME (--file PAYLOAD.json | --example NAME)",
		Short: "Send a correctly signed provider callback to a receiver (a provider sandbox)",
		Long: `Play the provider: read the WebhookEndpoint and its Secret with the kubeconfig, sign (or, for BananaTech,
encrypt) a plaintext payload exactly as the provider would, post it to the receiver and print the answer.
A post that gets no answer at all (the connection refused or closed, as by a load balancer with no ready
backend yet) is sent again until --timeout, as providers do; the receiver deduplicates it. Exits non-zero
when the receiver answers 300 or more, or never answers.`,
		Example: `  # against make demo (the cardplane dev kubeconfig and receiver are the defaults)
  cardplane simulate --endpoint default/upay-main --example upay-card-status
  cardplane simulate --list-examples

  # a payload of your own, through your load balancer
  cardplane simulate -n payments --endpoint upay-main --file event.json --url https://cards.example.com --cacert ca.crt`,
		Args: o.validate,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.OutOrStdout(), cmd.ErrOrStderr()) },
	}
	fs := cmd.Flags()
	fs.StringVar(&o.endpoint, "endpoint", "", "the WebhookEndpoint to send to, as NAMESPACE/NAME, or NAME in --namespace (required)")
	fs.StringVar(&o.file, "file", "", "plaintext payload as the provider would send it before signing/encrypting ('-' for stdin)")
	fs.StringVar(&o.example, "example", "", "send a built-in example callback instead of --file (see --list-examples)")
	fs.BoolVar(&o.list, "list-examples", false, "list the built-in example callbacks and exit")
	fs.StringVar(&o.url, "url", "http://127.0.0.1:18443", "base URL of the receiver")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to read the endpoint and post, sending again while the receiver does not answer")
	fs.StringVar(&o.cacert, "cacert", "", "PEM file of the CA that signed the receiver's certificate (default: the system roots)")
	o.cluster = bindClusterFlags(fs, "namespace of --endpoint NAME (default: the kubeconfig context's namespace, then default)")
	// The default kubeconfig differs from kubectl's: without --kubeconfig and $KUBECONFIG, the one of make demo.
	fs.Lookup(clientcmd.RecommendedConfigPathFlag).Usage = "kubeconfig to read the endpoint and its Secret with (default: $KUBECONFIG, then the cardplane dev kubeconfig)"
	_ = cmd.RegisterFlagCompletionFunc("example", completeExamples)
	return cmd
}

// validate checks the command line before anything is read.
func (o *simulateOptions) validate(cmd *cobra.Command, args []string) error {
	if err := noArgs(cmd, args); err != nil || o.list {
		return err
	}
	if o.endpoint == "" || (o.file == "") == (o.example == "") {
		return errors.New("--endpoint and one of --file or --example are required")
	}
	ns, name, qualified := strings.Cut(o.endpoint, "/")
	if !qualified {
		return nil
	}
	if ns == "" || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("--endpoint %q: expected NAMESPACE/NAME or NAME", o.endpoint)
	}
	if n := o.cluster.overrides.Context.Namespace; n != "" && n != ns {
		return fmt.Errorf("--endpoint %s is in namespace %s, --namespace says %s", o.endpoint, ns, n)
	}
	return nil
}

func (o *simulateOptions) run(out, errOut io.Writer) error {
	examples, err := config.Callbacks()
	if err != nil {
		return err
	}
	if o.list {
		_, err := fmt.Fprintln(out, strings.Join(slices.Sorted(maps.Keys(examples)), "\n"))
		return err
	}
	var payload []byte
	if o.example != "" {
		if payload = examples[o.example]; payload == nil {
			return fmt.Errorf("no example callback %q: see --list-examples", o.example)
		}
	} else if payload, err = readPayload(o.file); err != nil {
		return err
	}
	c, key, err := o.kubeClient()
	if err != nil {
		return err
	}
	httpClient, err := o.httpClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	status, body, err := simulate(ctx, c, httpClient, key, payload, strings.TrimRight(o.url, "/"), time.Now(), errOut)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "HTTP %d\n%s\n", status, body)
	if status >= 300 {
		return fmt.Errorf("the receiver refused the callback")
	}
	return nil
}

// kubeClient connects with the kubeconfig and names the endpoint; a bare NAME is in --namespace, else in the
// context's namespace.
func (o *simulateOptions) kubeClient() (client.Client, client.ObjectKey, error) {
	if o.cluster.loading.ExplicitPath == "" && os.Getenv(clientcmd.RecommendedConfigPathEnvVar) == "" {
		o.cluster.loading.ExplicitPath = filepath.Join(cacheDir(), "dev", "kubeconfig") // make demo's
	}
	cc := o.cluster.clientConfig()
	key := client.ObjectKey{Name: o.endpoint}
	if ns, name, ok := strings.Cut(o.endpoint, "/"); ok {
		key = client.ObjectKey{Namespace: ns, Name: name}
	} else {
		var err error
		if key.Namespace, _, err = cc.Namespace(); err != nil {
			return nil, key, fmt.Errorf("kubeconfig: %w", err)
		}
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, key, fmt.Errorf("kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	return c, key, err
}

// httpClient trusts --cacert, or the system roots.
func (o *simulateOptions) httpClient() (*http.Client, error) {
	if o.cacert == "" {
		return http.DefaultClient, nil
	}
	pem, err := os.ReadFile(o.cacert)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", o.cacert)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}, nil
}

func completeExamples(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	examples, err := config.Callbacks()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	return slices.Sorted(maps.Keys(examples)), cobra.ShellCompDirectiveNoFileComp
}

func readPayload(file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(file)
}

func simulate(ctx context.Context, c client.Client, httpClient *http.Client, key client.ObjectKey, payload []byte, baseURL string, now time.Time, log io.Writer) (int, string, error) {
	ep := &cardsv1alpha1.WebhookEndpoint{}
	if err := c.Get(ctx, key, ep); err != nil {
		return 0, "", fmt.Errorf("reading WebhookEndpoint %s: %w", key, err)
	}
	res, err := endpointconfig.Resolve(ctx, c, ep)
	if err != nil {
		return 0, "", fmt.Errorf("endpoint %s: %w", key, err)
	}
	encode := adapters.Encoders()[ep.Spec.Provider]
	if encode == nil {
		return 0, "", fmt.Errorf("no simulator for provider %s", ep.Spec.Provider)
	}
	header, body, err := encode(res, payload, now)
	if err != nil {
		return 0, "", fmt.Errorf("encoding the payload as %s would: %w", ep.Spec.Provider, err)
	}
	target := baseURL + "/webhooks/" + key.Namespace + "/" + key.Name
	if res.URLToken != "" {
		target += "/" + res.URLToken
	}
	resp, err := post(ctx, httpClient, target, header, body, log)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(answer), nil
}

// post sends the callback as a provider does: a request that got no answer at all (the connection refused,
// reset or closed before a response, as by a load balancer with no ready backend yet) is sent again until
// ctx ends. The receiver deduplicates by event, so a resend is safe; any HTTP answer is final.
func post(ctx context.Context, httpClient *http.Client, target string, header http.Header, body []byte, log io.Writer) (*http.Response, error) {
	wait := 200 * time.Millisecond
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header = header.Clone()
		resp, err := httpClient.Do(req)
		if err == nil {
			return resp, nil
		}
		if !noAnswer(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("posting to the receiver: %w", err)
		}
		fmt.Fprintf(log, "no answer from the receiver (%v); sending again in %s\n", err, wait)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("posting to the receiver: %w", err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// noAnswer tells a connection that ended before any response (worth sending again) from a failure that
// will not change by itself: a bad URL, an untrusted certificate, a timeout.
func noAnswer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}
