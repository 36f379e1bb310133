package webhookserver

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"golang.org/x/time/rate"
	"k8s.io/utils/lru"

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

// limiter is the endpoint's token bucket (per generation, so a new spec.rateLimit takes effect), or nil.
func (s *Server) limiter(ep *cardsv1alpha1.WebhookEndpoint) *rate.Limiter {
	rl := ep.Spec.RateLimit
	if rl == nil {
		return nil
	}
	return s.limiters.get(fmt.Sprintf("%s/%d", ep.UID, ep.Generation), func() *rate.Limiter {
		burst := int(rl.Burst)
		if burst == 0 {
			burst = int(rl.RequestsPerSecond)
		}
		return rate.NewLimiter(rate.Limit(rl.RequestsPerSecond), burst)
	})
}

// limiterSet is a bounded set of token buckets by key: the least recently used go first, so keys a caller
// chooses (its address, its name) cannot grow it without bound. A forgotten bucket starts full again, which
// only ever errs toward letting a quiet caller through.
type limiterSet struct {
	mu  sync.Mutex
	lru *lru.Cache
}

func newLimiterSet(size int) *limiterSet { return &limiterSet{lru: lru.New(size)} }

// get returns the bucket of key, made by create when there is none.
func (l *limiterSet) get(key string, create func() *rate.Limiter) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := l.lru.Get(key); ok {
		return v.(*rate.Limiter)
	}
	lim := create()
	l.lru.Add(key, lim)
	return lim
}

// Len is how many buckets are held.
func (l *limiterSet) Len() int { return l.lru.Len() }

// refusedFrom is the bucket a source address spends when its requests are refused as unauthenticated or
// malformed; an empty one refuses the address's requests before any verification work (a flood of junk
// cannot crowd out the providers' signed callbacks, nor the endpoints' own rate limits).
func (s *Server) refusedFrom(ip netip.Addr) *rate.Limiter {
	return s.sources.get(ip.String(), func() *rate.Limiter {
		return rate.NewLimiter(rate.Limit(s.RefusedPerSource), 5*max(1, int(s.RefusedPerSource)))
	})
}
