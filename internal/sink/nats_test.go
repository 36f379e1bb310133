package sink_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/cardplane/cardplane/internal/sink"
)

const natsStream = "CARDPLANE"

// startNATS runs an embedded NATS server with JetStream on port (-1: any), storing in dir, with a stream on
// "cardplane.>". admin is the connection options to create the stream with (the server's credentials).
func startNATS(t testing.TB, port int, dir string, configure func(*server.Options), admin ...nats.Option) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true}
	if configure != nil {
		configure(opts)
	}
	var s *server.Server
	var err error
	for range 50 { // the port was free a moment ago
		if s, err = server.NewServer(opts); err == nil {
			s.Start()
			if s.ReadyForConnections(10 * time.Second) {
				break
			}
			s.Shutdown()
			err = errors.New("server not ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect(s.ClientURL(), admin...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateStream(context.Background(), jetstream.StreamConfig{Name: natsStream,
		Subjects: []string{"cardplane.>"}, Duplicates: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	return s
}

func newNATS(t testing.TB, cfg sink.NATSConfig) *sink.NATS {
	t.Helper()
	if cfg.SubjectPrefix == "" {
		cfg.SubjectPrefix = "cardplane"
	}
	if cfg.DialControl == nil {
		cfg.DialControl = loopback
	}
	s, err := sink.NewNATS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// stored is every message of the stream, in stream order.
func stored(t *testing.T, url string, admin ...nats.Option) []*jetstream.RawStreamMsg {
	t.Helper()
	nc, err := nats.Connect(url, admin...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	st, err := js.Stream(ctx, natsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// checkNATS asserts the stream holds every state once, each card's in order.
func checkNATS(t *testing.T, msgs []*jetstream.RawStreamMsg, evs []sink.Event) {
	t.Helper()
	var got received
	for _, m := range msgs {
		var data struct {
			Metadata struct{ Name string }
		}
		_ = json.Unmarshal(m.Data, &data)
		if m.Header.Get(jetstream.MsgIDHeader) != m.Header.Get("ce-id") {
			t.Errorf("Nats-Msg-Id %q, ce-id %q", m.Header.Get(jetstream.MsgIDHeader), m.Header.Get("ce-id"))
		}
		got.add("uid-"+data.Metadata.Name, m.Header.Get("ce-id"))
	}
	got.check(t, evs)
}

func TestNATSDeliversEveryStateInOrderOnce(t *testing.T) {
	srv := startNATS(t, -1, t.TempDir(), nil)
	s := newNATS(t, sink.NATSConfig{URLs: []string{srv.ClientURL()}, Stream: natsStream})
	evs := events(4, 5)
	if n := deliver(t, s, evs, nil); n != 0 {
		t.Errorf("%d failed attempts against a healthy server", n)
	}
	// The same states again (retries after lost acks): the stream's de-duplication drops them.
	deliver(t, s, evs[len(evs)-4:], nil)
	msgs := stored(t, srv.ClientURL())
	checkNATS(t, msgs, evs)
	m := msgs[0]
	if m.Subject != "cardplane.card.updated" || m.Header.Get("ce-type") != "io.cardplane.card.updated" ||
		m.Header.Get("ce-source") != evs[0].Source || m.Header.Get("ce-subject") != evs[0].Subject ||
		m.Header.Get("ce-specversion") != "1.0" || m.Header.Get("Content-Type") != "application/json" {
		t.Errorf("message %s %v", m.Subject, m.Header)
	}
}

// TestNATSDownThenUp: the server is down when the sink is built, comes up, goes down for a while in the
// middle (keeping its store) and comes back on the same port; nothing is skipped or stored twice.
func TestNATSDownThenUp(t *testing.T) {
	addr, dir := freeAddr(t), t.TempDir()
	port := portOf(t, addr)
	s := newNATS(t, sink.NATSConfig{URLs: []string{"nats://" + addr}, Timeout: 2 * time.Second})
	evs := events(4, 6)
	var srv *server.Server
	if failures := deliver(t, s, evs[:12], func() { srv = startNATS(t, port, dir, nil) }); failures == 0 {
		t.Fatal("a Send to a server that is down succeeded")
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	back := make(chan struct{})
	failures := deliver(t, s, evs[12:], func() {
		go func() {
			defer close(back)
			time.Sleep(300 * time.Millisecond)
			srv = startNATS(t, port, dir, nil)
		}()
	})
	<-back
	if failures == 0 {
		t.Fatal("a Send to a server that went down succeeded")
	}
	checkNATS(t, stored(t, srv.ClientURL()), evs)
	t.Logf("%d failed attempts", failures)
}

func TestNATSPermanentErrors(t *testing.T) {
	srv := startNATS(t, -1, t.TempDir(), func(o *server.Options) { o.MaxPayload = 4096 })
	url := []string{srv.ClientURL()}
	ev := events(1, 1)[0]
	for name, tc := range map[string]struct {
		cfg  sink.NATSConfig
		ev   sink.Event
		want error
	}{
		"no stream":      {sink.NATSConfig{URLs: url, SubjectPrefix: "elsewhere"}, ev, sink.ErrNoStream},
		"another stream": {sink.NATSConfig{URLs: url, Stream: "OTHER"}, ev, sink.ErrNoStream},
		"too large": {sink.NATSConfig{URLs: url}, sink.Event{ID: ev.ID, Type: ev.Type, Source: ev.Source,
			Data: []byte(`"` + strings.Repeat("x", 8192) + `"`)}, sink.ErrTooLarge},
		"wildcard type": {sink.NATSConfig{URLs: url}, sink.Event{ID: ev.ID, Type: "card.*", Source: ev.Source,
			Data: ev.Data}, sink.ErrInvalidEvent},
	} {
		err := newNATS(t, tc.cfg).Send(context.Background(), tc.ev)
		if !errors.Is(err, tc.want) || !sink.Permanent(err) {
			t.Errorf("%s: %v, want a permanent %v", name, err, tc.want)
		}
	}
}

// TestNATSAuthentication: user/password over mutual TLS, a token, an NKey; a missing client certificate and
// a wrong password are refused.
func TestNATSAuthentication(t *testing.T) {
	p := newPKI(t)
	withCert, withoutCert := p.clientTLS(true), p.clientTLS(false)
	tlsSrv := startNATS(t, -1, t.TempDir(), func(o *server.Options) {
		o.TLSConfig, o.TLSVerify, o.Username, o.Password = p.serverTLS(true), true, "cardplane", "s3cret"
	}, natsAdminTLS(p), nats.UserInfo("cardplane", "s3cret"))
	tokenSrv := startNATS(t, -1, t.TempDir(), func(o *server.Options) { o.Authorization = "t0ken" }, nats.Token("t0ken"))
	seed, pub := nkeyUser(t)
	nkeySrv := startNATS(t, -1, t.TempDir(), func(o *server.Options) {
		o.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	}, nkeyOption(t, seed))

	for name, tc := range map[string]struct {
		cfg           sink.NATSConfig
		ok, permanent bool
	}{
		"mTLS and password": {sink.NATSConfig{URLs: []string{tlsSrv.ClientURL()}, TLS: &withCert, User: "cardplane", Password: "s3cret"}, true, false},
		"token":             {sink.NATSConfig{URLs: []string{tokenSrv.ClientURL()}, Token: "t0ken"}, true, false},
		"NKey":              {sink.NATSConfig{URLs: []string{nkeySrv.ClientURL()}, NKeySeed: seed}, true, false},
		"no client certificate": {sink.NATSConfig{URLs: []string{tlsSrv.ClientURL()}, TLS: &withoutCert,
			User: "cardplane", Password: "s3cret"}, false, false},
		// Refused credentials are permanent, like an HTTP 401.
		"wrong password": {sink.NATSConfig{URLs: []string{tlsSrv.ClientURL()}, TLS: &withCert, User: "cardplane", Password: "x"}, false, true},
		"wrong token":    {sink.NATSConfig{URLs: []string{tokenSrv.ClientURL()}, Token: "nope"}, false, true},
	} {
		tc.cfg.Timeout = 2 * time.Second
		err := newNATS(t, tc.cfg).Send(context.Background(), events(1, 1)[0])
		if (err == nil) != tc.ok || sink.Permanent(err) != tc.permanent {
			t.Errorf("%s: %v (permanent %t)", name, err, sink.Permanent(err))
		}
	}
}

// natsAdminTLS is the admin connection's TLS: the test CA and the client certificate.
func natsAdminTLS(p *pki) nats.Option {
	return nats.Secure(&tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.clientPair}, MinVersion: tls.VersionTLS12})
}

func nkeyUser(t *testing.T) ([]byte, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	return seed, pub
}

func nkeyOption(t *testing.T, seed []byte) nats.Option {
	t.Helper()
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return nats.Nkey(pub, kp.Sign)
}

// TestNATSCredentials: a .creds file (user JWT and seed) is parsed; a malformed one is refused.
func TestNATSCredentials(t *testing.T) {
	account, _ := nkeys.CreateAccount()
	user, _ := nkeys.CreateUser()
	userPub, _ := user.PublicKey()
	claims := jwt.NewUserClaims(userPub)
	token, err := claims.Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	if _, err := sink.NewNATS(sink.NATSConfig{URLs: []string{"nats://" + addr}, SubjectPrefix: "cardplane",
		Credentials: creds, DialControl: loopback}); err != nil {
		t.Errorf("credentials: %v", err)
	}
	for name, cfg := range map[string]sink.NATSConfig{
		"malformed credentials": {Credentials: []byte("-----BEGIN NATS USER JWT-----\nnope\n------END NATS USER JWT------\n")},
		"bad NKey seed":         {NKeySeed: []byte("SUNOPE")},
		"two methods":           {Token: "t", User: "u", Password: "p"},
		"no prefix":             {SubjectPrefix: "-"},
		"wildcard prefix":       {SubjectPrefix: "cardplane.>"},
		"bad CA":                {TLS: &sink.TLS{CA: []byte("x")}},
	} {
		cfg.URLs = []string{"nats://" + addr}
		switch cfg.SubjectPrefix {
		case "":
			cfg.SubjectPrefix = "cardplane"
		case "-":
			cfg.SubjectPrefix = ""
		}
		if _, err := sink.NewNATS(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
