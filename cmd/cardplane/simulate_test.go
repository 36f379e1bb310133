package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// closingListener closes the first n connections it accepts before a byte is read, as a load balancer with
// no ready backend does, and hands the rest to the server.
type closingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *closingListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil || l.n.Add(-1) < 0 {
			return conn, err
		}
		conn.Close()
	}
}

func TestPostSendsAgainWhileTheReceiverDoesNotAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &closingListener{Listener: ln}
	cl.n.Store(2)
	var posts atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Signature") != "sig" || string(body) != "payload" {
			http.Error(w, "resent request differs", http.StatusBadRequest)
			return
		}
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})}
	go func() { _ = srv.Serve(cl) }()
	t.Cleanup(func() { srv.Close() })

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var log bytes.Buffer
	resp, err := post(ctx, &http.Client{}, "http://"+ln.Addr().String()+"/webhooks/a/b",
		http.Header{"X-Signature": {"sig"}}, []byte("payload"), &log)
	if err != nil {
		t.Fatalf("post: %v (log: %s)", err, log.String())
	}
	resp.Body.Close()
	// Two connections closed unanswered are sent again; the 503 that follows is an answer and final.
	if resp.StatusCode != http.StatusServiceUnavailable || posts.Load() != 1 {
		t.Fatalf("status %d after %d posts the server saw, want one 503", resp.StatusCode, posts.Load())
	}
	if got := strings.Count(log.String(), "no answer from the receiver"); got != 2 {
		t.Fatalf("want 2 resends reported, got %d:\n%s", got, log.String())
	}
}

func TestPostGivesUpOnWhatWillNotChange(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	// An https URL to a plain-HTTP server is a TLS failure: reported at once, not sent again.
	var log bytes.Buffer
	start := time.Now()
	resp, err := post(t.Context(), &http.Client{}, "https://"+ln.Addr().String()+"/webhooks/a/b", http.Header{}, nil, &log)
	if err == nil {
		resp.Body.Close()
	}
	if err == nil || log.Len() != 0 {
		t.Fatalf("err %v, resends %q: want an error and no resend", err, log.String())
	}
	t.Logf("%v after %s", err, time.Since(start))
}
