package webhookserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/cardplane/cardplane/internal/testenv"
)

// writeCert writes a certificate for 127.0.0.1 with serial into dir/tls.crt and dir/tls.key, renamed in as the
// kubelet updates a mounted Secret.
func writeCert(t *testing.T, dir string, serial int64) {
	t.Helper()
	certPEM, keyPEM := testenv.NewCA(t).Issue(t, serial, "cardplane-receiver", x509.ExtKeyUsageServerAuth)
	testenv.WriteKeyPair(t, dir, certPEM, keyPEM)
}

// servedSerial is the serial of the certificate a TLS handshake with addr presents.
func servedSerial(addr string) (int64, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test reads the certificate, it trusts nothing
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// TestARenewedCertificateIsServed: when the certificate files change on disk (cert-manager renewed the
// Secret), the next TLS handshake presents the new certificate, without a restart. (Before, ServeTLS read the
// files once and served the old certificate until it expired.)
func TestARenewedCertificateIsServed(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := Listen{Addr: addr, CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}
	go func() { _ = l.serve(ctx, "test", http.NotFoundHandler()) }()
	var serial int64
	for deadline := time.Now().Add(10 * time.Second); serial != 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not present certificate 1 (last: %d, %v)", serial, err)
		}
		serial, err = servedSerial(addr)
	}
	writeCert(t, dir, 2)
	for deadline := time.Now().Add(30 * time.Second); serial != 2; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the renewal the server still presents certificate %d", serial)
		}
		serial, _ = servedSerial(addr)
	}
}
