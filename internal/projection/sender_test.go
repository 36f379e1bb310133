package projection

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestAllowed(t *testing.T) {
	cases := []struct {
		ip                    string
		private, loopback, ok bool
	}{
		{"203.0.113.10", false, false, true},
		{"127.0.0.1", false, false, false},
		{"127.0.0.1", false, true, true},
		{"::1", false, false, false},
		{"10.1.2.3", false, true, false},
		{"192.168.1.1", false, false, false},
		{"169.254.169.254", false, false, false}, // cloud metadata
		{"100.64.0.1", false, false, false},
		{"0.0.0.0", false, false, false},
		{"fd00::1", false, false, false},
		{"10.1.2.3", true, false, true},
	}
	for _, c := range cases {
		if got := allowed(netip.MustParseAddr(c.ip), c.private, c.loopback); got != c.ok {
			t.Errorf("allowed(%s, private=%v, loopback=%v) = %v", c.ip, c.private, c.loopback, got)
		}
	}
}

// The guard runs at dial time, after DNS: a loopback destination is refused unless allowed.
func TestSendRefusesLoopbackAndHonoursRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	msg := Message{ID: "x-1", Body: []byte(`{}`), URL: srv.URL, Secret: []byte("0123456789abcdef")}
	err := (&Sender{}).Send(context.Background(), msg)
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("loopback destination: %v, want ErrForbiddenAddress", err)
	}
	err = (&Sender{AllowLoopback: true}).Send(context.Background(), msg)
	var e *Error
	if !errors.As(err, &e) || e.Status != 429 || e.RetryAfter != 7*time.Second {
		t.Fatalf("429 with Retry-After: %v", err)
	}
}
