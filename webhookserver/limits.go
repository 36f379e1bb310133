package webhookserver

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"golang.org/x/time/rate"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver/adapter"
)

// authentic checks the URL token and the source address for endpoints that use them.
func authentic(r *http.Request, cfg *endpointconfig.Resolved) *refusal {
	token := r.PathValue("token")
	switch {
	case cfg.URLToken == "" && token != "":
		return refuse(http.StatusNotFound, cardsv1alpha1.ReasonNotFound, "this endpoint takes no URL token")
	case cfg.URLToken != "" && !adapter.Equal([]byte(token), []byte(cfg.URLToken)):
		return refuse(http.StatusUnauthorized, cardsv1alpha1.ReasonInvalidURLToken, "missing or wrong URL token")
	}
	if len(cfg.SourcePrefixes) == 0 {
		return nil
	}
	ip := clientIP(r, cfg.TrustedProxies)
	for _, p := range cfg.SourcePrefixes {
		if ip.IsValid() && p.Contains(ip) {
			return nil
		}
	}
	return refuse(http.StatusForbidden, cardsv1alpha1.ReasonSourceNotAllowed, "source address %s is not in verification.sourceCIDRs", ip)
}

// clientIP is the peer address, or, when the peer is a trusted proxy, the nearest untrusted address in
// X-Forwarded-For (read from the right, as each proxy appends).
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if !isTrusted(ip) {
		return ip
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}
		}
		a = a.Unmap()
		if !isTrusted(a) {
			return a
		}
	}
	return ip
}

func (s *Server) limiter(ep *cardsv1alpha1.WebhookEndpoint) *rate.Limiter {
	rl := ep.Spec.RateLimit
	if rl == nil {
		return nil
	}
	key := fmt.Sprintf("%s/%d", ep.UID, ep.Generation)
	if l, ok := s.limiters.Load(key); ok {
		return l.(*rate.Limiter)
	}
	burst := int(rl.Burst)
	if burst == 0 {
		burst = int(rl.RequestsPerSecond)
	}
	l, _ := s.limiters.LoadOrStore(key, rate.NewLimiter(rate.Limit(rl.RequestsPerSecond), burst))
	return l.(*rate.Limiter)
}
