package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cardplane/cardplane/config"
	"github.com/cardplane/cardplane/internal/endpointconfig"
)

// demoDestination is the external system of `cardplane dev`: it checks each delivery's Standard Webhooks
// signature on its own (as a consumer would, not with cardplane's signing code) and logs one line per
// delivery, to show that every state change arrives, signed. One-time codes are shown masked.
type demoDestination struct {
	key []byte
	log io.Writer
	mu  sync.Mutex
}

// startDemoDestination serves on addr with the secret of the sample Secret ledger-webhook-secret.
func startDemoDestination(addr, logPath string) (*http.Server, error) {
	samples, err := config.Samples()
	if err != nil {
		return nil, err
	}
	var secret string
	for _, s := range samples {
		if s.Object.GetKind() == "Secret" && s.Object.GetName() == "ledger-webhook-secret" {
			secret, _, _ = unstructuredString(s.Object.Object, "stringData", "webhookSecret")
		}
	}
	key, err := endpointconfig.StandardWebhooksKey([]byte(secret))
	if err != nil {
		return nil, fmt.Errorf("sample ledger-webhook-secret: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	d := &demoDestination{key: key, log: io.MultiWriter(os.Stdout, f)}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demo destination: %w", err)
	}
	srv := &http.Server{Handler: d, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}

func unstructuredString(obj map[string]any, fields ...string) (string, bool, error) {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[f]
	}
	s, ok := cur.(string)
	return s, ok, nil
}

func (d *demoDestination) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, d.key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	verified := false
	for _, sig := range strings.Fields(r.Header.Get("webhook-signature")) {
		verified = verified || hmac.Equal([]byte(sig), []byte(want))
	}
	sec, _ := strconv.ParseInt(ts, 10, 64)
	fresh := time.Since(time.Unix(sec, 0)).Abs() < 5*time.Minute
	var env struct {
		Type string `json:"type"`
		Data struct {
			Metadata struct{ Name string } `json:"metadata"`
			Status   struct {
				Phase         string          `json:"phase"`
				StateSequence int64           `json:"stateSequence"`
				Balance       json.RawMessage `json:"balance"`
				Amount        *struct{ Value, Currency string }
			} `json:"status"`
			Card      *struct{ Name string } `json:"card"`
			Challenge *struct{ Purpose, Code string }
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &env)
	d.mu.Lock()
	defer d.mu.Unlock()
	stamp := time.Now().UTC().Format("15:04:05.000")
	if !verified || !fresh {
		fmt.Fprintf(d.log, "destination %s REJECTED %s: signature verified=%v fresh=%v\n", stamp, id, verified, fresh)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	switch {
	case env.Data.Challenge != nil:
		code := env.Data.Challenge.Code
		if len(code) > 2 {
			code = strings.Repeat("*", len(code)-2) + code[len(code)-2:]
		}
		card := ""
		if env.Data.Card != nil {
			card = env.Data.Card.Name
		}
		fmt.Fprintf(d.log, "destination %s verified %s %s %s code %s (id %s)\n", stamp, env.Type, card, env.Data.Challenge.Purpose, code, id)
	default:
		extra := ""
		if a := env.Data.Status.Amount; a != nil {
			extra = " amount " + a.Value + " " + a.Currency
		}
		fmt.Fprintf(d.log, "destination %s verified %s %s state %d phase %s%s (id %s)\n", stamp, env.Type,
			env.Data.Metadata.Name, env.Data.Status.StateSequence, env.Data.Status.Phase, extra, id)
	}
	w.WriteHeader(http.StatusNoContent)
}
