package rulesadmission

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Certificate and key file names in the certificate directory: those of a kubernetes.io/tls Secret.
const (
	CertName = "tls.crt"
	KeyName  = "tls.key"
)

// Server serves the Handler at Path with controller-runtime's webhook.Server: TLS from the certificate
// directory, reloaded by its certwatcher when the files change (cert-manager renews them in place). Add it to
// the manager; it runs on every replica (no leader election), as the API server calls any of them.
type Server struct {
	webhook.Server
	certDir string
	// poll is how often a missing certificate is looked for.
	poll time.Duration
}

// NewServer returns the server for addr (host:port, host optional) and certDir (holding tls.crt and tls.key).
func NewServer(addr, certDir string) (*Server, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("admission address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("admission address %q: the port must be a number from 1 to 65535", addr)
	}
	if certDir == "" {
		return nil, errors.New("the admission webhook needs a certificate directory")
	}
	srv := webhook.NewServer(webhook.Options{
		Host: host, Port: port, CertDir: certDir, CertName: CertName, KeyName: KeyName,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
			c.MinVersion = tls.VersionTLS12
			// HTTP/1.1 only, as kubebuilder's scaffold defaults to since the HTTP/2 stream-reset attacks
			// (CVE-2023-44487, CVE-2023-39325); the API server calls webhooks over HTTP/1.1 just as well.
			c.NextProtos = []string{"http/1.1"}
		}},
	})
	srv.Register(Path, NewHandler().Webhook())
	return &Server{Server: srv, certDir: certDir, poll: 5 * time.Second}, nil
}

// Start waits for the certificate, then serves until ctx ends. The certificate's Secret may appear after the
// pod started (cert-manager issues it then; config/webhook mounts it optional), and the replica must not fail for
// it: it also answers card authorizations. Until then the API server cannot reach the webhook and, failing
// open, lets rule-set writes through; the receiver still refuses to load a broken set.
func (s *Server) Start(ctx context.Context) error {
	if !s.waitForCertificate(ctx) {
		return nil // stopped before the certificate came
	}
	if err := s.Server.Start(ctx); err != nil {
		return fmt.Errorf("admission webhook: %w", err)
	}
	return nil
}

// waitForCertificate returns true once tls.crt and tls.key exist, false when ctx ends first.
func (s *Server) waitForCertificate(ctx context.Context) bool {
	t := time.NewTicker(s.poll)
	defer t.Stop()
	for logged := false; ; logged = true {
		if exists(filepath.Join(s.certDir, CertName)) && exists(filepath.Join(s.certDir, KeyName)) {
			return true
		}
		if !logged {
			logf.FromContext(ctx).WithName("rule-set-admission").Info("Admission webhook waits for its certificate; rule-set writes are not checked until then",
				"certDir", s.certDir)
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
