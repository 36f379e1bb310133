package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/config"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/scheme"
	"github.com/cardplane/cardplane/webhookserver/adapters"
)

// runSimulateCommand is a provider simulator: it signs (or encrypts) a plaintext payload with the endpoint's
// own credentials, exactly as the provider would, and posts it to the receiver. What providers' sandboxes do.
func runSimulateCommand(args []string) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	endpoint := fs.String("endpoint", "", "the WebhookEndpoint to send to, as NAMESPACE/NAME (required)")
	file := fs.String("file", "", "plaintext payload as the provider would send it before signing/encrypting ('-' for stdin)")
	example := fs.String("example", "", "send a built-in example callback instead of --file (see --list-examples)")
	list := fs.Bool("list-examples", false, "list the built-in example callbacks and exit")
	url := fs.String("url", "http://127.0.0.1:18443", "base URL of the receiver")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig to read the endpoint and its Secret with (default $KUBECONFIG, then the cardplane dev kubeconfig)")
	timeout := fs.Duration("timeout", 10*time.Second, "request timeout")
	cacert := fs.String("cacert", "", "PEM file of the CA that signed the receiver's certificate (default: the system roots)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cardplane simulate --endpoint NAMESPACE/NAME (--file PAYLOAD.json | --example NAME) [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	examples, err := config.Callbacks()
	if err != nil {
		return err
	}
	if *list {
		names := make([]string, 0, len(examples))
		for n := range examples {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Println(strings.Join(names, "\n"))
		return nil
	}
	ns, name, ok := strings.Cut(*endpoint, "/")
	if !ok || ns == "" || name == "" || (*file == "") == (*example == "") {
		fs.Usage()
		return fmt.Errorf("--endpoint NAMESPACE/NAME and one of --file or --example are required")
	}
	var payload []byte
	if *example != "" {
		if payload = examples[*example]; payload == nil {
			return fmt.Errorf("no example callback %q: see --list-examples", *example)
		}
	} else if payload, err = readPayload(*file); err != nil {
		return err
	}
	path := *kubeconfig
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	if path == "" {
		path = filepath.Join(cacheDir(), "dev", "kubeconfig")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	httpClient := http.DefaultClient
	if *cacert != "" {
		pem, err := os.ReadFile(*cacert)
		if err != nil {
			return err
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--cacert %s: no PEM certificate in it", *cacert)
		}
		httpClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	}
	status, body, err := simulate(ctx, c, httpClient, client.ObjectKey{Namespace: ns, Name: name}, payload, strings.TrimRight(*url, "/"), time.Now())
	if err != nil {
		return err
	}
	fmt.Printf("HTTP %d\n%s\n", status, body)
	if status >= 300 {
		return fmt.Errorf("the receiver refused the callback")
	}
	return nil
}

func readPayload(file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(file)
}

func simulate(ctx context.Context, c client.Client, httpClient *http.Client, key client.ObjectKey, payload []byte, baseURL string, now time.Time) (int, string, error) {
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header = header
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("posting to the receiver: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(answer), nil
}
