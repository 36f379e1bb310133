package projection

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/scheme"
	"github.com/cardplane/cardplane/internal/sink"
)

// destinationSecret is the signing Secret "d" of the test destinations.
var destinationSecret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}},
	Data: map[string][]byte{cardsv1alpha1.SecretKeyDestinationSecret: []byte("0123456789abcdef")}}

// sendTo delivers one state to a destination at url the way the dispatcher does: the destination's sink,
// built under n's policy and the endpoint's allowedCIDRs.
func sendTo(n *Network, url string, allowed ...string) error {
	ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ep"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay, Destinations: []cardsv1alpha1.Destination{{
			Name: "d", URL: url, SecretRef: cardsv1alpha1.LocalObjectReference{Name: "d"}, Timeout: &metav1.Duration{Duration: 2 * time.Second}}}}}
	if len(allowed) > 0 {
		ep.Spec.DestinationPolicy = &cardsv1alpha1.DestinationPolicy{AllowedCIDRs: allowed}
	}
	reader := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(destinationSecret.DeepCopy()).Build()
	s, err := n.buildDestination(context.Background(), reader, ep, &ep.Spec.Destinations[0])
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	return s.Send(context.Background(), sink.Event{ID: "x-1", Type: "card.updated", Source: "/x", Data: []byte(`{}`)})
}

// hostPort puts an address into a URL's host.
func hostPort(addr string, port int) string { return net.JoinHostPort(addr, strconv.Itoa(port)) }

// specialPurpose is one address of every range of the IANA IPv4 and IPv6 Special-Purpose Address Registries
// (and of the other non-public ranges), with the range it stands for.
var specialPurpose = []struct{ addr, rangeName string }{
	{"0.1.2.3", "0.0.0.0/8 this network"},
	{"0.0.0.0", "0.0.0.0/32 this host"},
	{"10.1.2.3", "10.0.0.0/8 private"},
	{"100.64.0.1", "100.64.0.0/10 shared address space"},
	{"100.100.100.200", "Alibaba Cloud metadata"},
	{"127.0.0.2", "127.0.0.0/8 loopback"},
	{"169.254.169.254", "169.254.0.0/16 link-local, cloud metadata"},
	{"172.16.0.1", "172.16.0.0/12 private"},
	{"192.0.0.8", "192.0.0.0/24 IETF protocol assignments"},
	{"192.0.0.192", "Oracle Cloud legacy metadata"},
	{"192.0.2.1", "192.0.2.0/24 TEST-NET-1"},
	{"192.31.196.1", "192.31.196.0/24 AS112-v4"},
	{"192.52.193.1", "192.52.193.0/24 AMT"},
	{"192.88.99.1", "192.88.99.0/24 6to4 relay anycast"},
	{"192.168.1.1", "192.168.0.0/16 private"},
	{"192.175.48.1", "192.175.48.0/24 AS112"},
	{"198.19.0.1", "198.18.0.0/15 benchmarking"},
	{"198.51.100.1", "198.51.100.0/24 TEST-NET-2"},
	{"203.0.113.10", "203.0.113.0/24 TEST-NET-3"},
	{"224.0.0.1", "224.0.0.0/4 multicast"},
	{"240.0.0.1", "240.0.0.0/4 reserved"},
	{"255.255.255.255", "255.255.255.255/32 limited broadcast"},
	{"::", "::/128 unspecified"},
	{"::1", "::1/128 loopback"},
	{"::ffff:10.0.0.1", "::ffff:0:0/96 IPv4-mapped (private)"},
	{"::ffff:169.254.169.254", "::ffff:0:0/96 IPv4-mapped (metadata)"},
	{"64:ff9b::808:808", "64:ff9b::/96 NAT64"},
	{"64:ff9b:1::1", "64:ff9b:1::/48 local-use NAT64"},
	{"100::1", "100::/64 discard-only"},
	{"2001::1", "2001::/32 Teredo"},
	{"2001:2::1", "2001:2::/48 benchmarking"},
	{"2001:20::1", "2001:20::/28 ORCHIDv2"},
	{"2001:db8::1", "2001:db8::/32 documentation"},
	{"2002:a9fe:a9fe::1", "2002::/16 6to4"},
	{"2620:4f:8000::1", "2620:4f:8000::/48 AS112"},
	{"3fff::1", "3fff::/20 documentation"},
	{"5f00::1", "5f00::/16 SRv6 SIDs"},
	{"fc00::1", "fc00::/7 unique-local"},
	{"fd00:ec2::254", "AWS metadata"},
	{"fe80::1", "fe80::/10 link-local"},
	{"ff02::1", "ff00::/8 multicast"},
}

// Every special-purpose range is refused when connecting (the guard runs in the dialer, after DNS): the
// dial never reaches the address.
func TestSendRefusesSpecialPurposeRanges(t *testing.T) {
	for _, c := range specialPurpose {
		t.Run(c.rangeName, func(t *testing.T) {
			t.Parallel()
			err := sendTo(&Network{}, "http://"+hostPort(c.addr, 8080)+"/")
			if !errors.Is(err, ErrForbiddenAddress) {
				t.Errorf("%s (%s): %v, want ErrForbiddenAddress", c.addr, c.rangeName, err)
			}
		})
	}
}

// The guard's decisions, address by address: the allow-list opens exactly its ranges, and never loopback,
// link-local or metadata addresses, not even through a wider range, NAT64 or 6to4.
func TestGuardAllowList(t *testing.T) {
	cases := []struct {
		allowed  []string
		loopback bool
		open     []string
		refused  []string
	}{
		{nil, false, []string{"8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"}, []string{"10.1.2.3", "127.0.0.1", "fd00::1"}},
		{[]string{"10.0.0.0/8", "fd00::/8"}, false,
			[]string{"10.1.2.3", "fd00::2", "8.8.8.8"},
			[]string{"172.16.0.1", "192.168.1.1", "fc00::1", "fd00:ec2::254", "fd00:ec2::123", "127.0.0.1", "::1"}},
		{[]string{"100.64.0.0/10"}, false, []string{"100.64.0.1", "100.127.255.254"}, []string{"100.100.100.200", "10.0.0.1"}},
		{[]string{"0.0.0.0/0", "::/0"}, false,
			[]string{"10.1.2.3", "192.0.2.1", "fd00::1", "2001:db8::1"},
			[]string{"169.254.169.254", "169.254.170.2", "::ffff:169.254.169.254", "fd00:ec2::254", "fe80::1", "127.0.0.1", "::1",
				"0.0.0.0", "0.1.2.3", "::", "100.100.100.200", "168.63.129.16", "192.0.0.192",
				"64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "64:ff9b::7f00:1"}},
		// A listed range that is all metadata (the API server refuses it; the guard ignores it all the same).
		{[]string{"169.254.0.0/16", "fd00:ec2::/32", "fe80::/10"}, false, nil, []string{"169.254.169.254", "fd00:ec2::254", "fe80::1"}},
		// NAT64 opens the public IPv4 internet behind it, not the IPv4 ranges the allow-list does not open.
		{[]string{"64:ff9b::/96", "10.0.0.0/8"}, false, []string{"64:ff9b::808:808", "64:ff9b::a00:1"},
			[]string{"64:ff9b::ac10:1", "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1"}},
		// --allow-loopback-destinations opens loopback only.
		{nil, true, []string{"127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"}, []string{"10.1.2.3", "169.254.169.254", "0.0.0.0", "::"}},
	}
	for _, c := range cases {
		g := &guard{allowLoopback: c.loopback}
		for _, a := range c.allowed {
			g.allowed = append(g.allowed, netip.MustParsePrefix(a))
		}
		g.init()
		for _, a := range c.open {
			if err := g.check(netip.MustParseAddr(a)); err != nil {
				t.Errorf("allowed %v, loopback %v: %s refused: %v", c.allowed, c.loopback, a, err)
			}
		}
		for _, a := range c.refused {
			if err := g.check(netip.MustParseAddr(a)); !errors.Is(err, ErrForbiddenAddress) {
				t.Errorf("allowed %v, loopback %v: %s: %v, want ErrForbiddenAddress", c.allowed, c.loopback, a, err)
			}
		}
	}
}

// privateAddressOK is an address of this machine that the guard refuses by default (not loopback or
// link-local), so a real server can listen on it.
func privateAddressOK() (netip.Addr, bool) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, false
	}
	g := &guard{}
	g.init()
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil || p.Addr().IsLoopback() || p.Addr().IsLinkLocalUnicast() || g.check(p.Addr()) == nil {
			continue
		}
		return p.Addr(), true
	}
	return netip.Addr{}, false
}

// privateAddress is privateAddressOK or skips the test.
func privateAddress(t *testing.T) netip.Addr {
	t.Helper()
	addr, ok := privateAddressOK()
	if !ok {
		t.Skip("no non-public, non-loopback address on this machine to run a destination on")
	}
	return addr
}

// serveOn runs a destination on addr that answers 204 and counts what it got.
func serveOn(t *testing.T, addr netip.Addr) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(addr.String(), "0"))
	if err != nil {
		t.Skip(err)
	}
	got := new(atomic.Int32)
	srv := httptest.NewUnstartedServer(codeCounter(got))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, got
}

// A real destination on a private address of this machine: refused without an allow-list, delivered with one
// that covers it, refused with one that does not, and a connection opened under one endpoint's allow-list is
// not reused for another endpoint's delivery.
func TestAllowListOpensExactlyItsRanges(t *testing.T) {
	addr := privateAddress(t)
	srv, got := serveOn(t, addr)
	own := netip.PrefixFrom(addr, addr.BitLen()).String()
	wide := "10.0.0.0/8"
	if addr.Is6() || netip.MustParsePrefix(wide).Contains(addr) {
		wide = "172.16.0.0/12"
	}
	n := &Network{AllowLoopback: true}
	for _, c := range []struct {
		allowed []string
		ok      bool
	}{
		{nil, false},
		{[]string{wide}, false},
		{[]string{own}, true},
		{nil, false}, // right after a delivery to the same host:port under an allow-list
		{[]string{wide, netip.PrefixFrom(addr, addr.BitLen()-8).Masked().String()}, true},
		{[]string{"0.0.0.0/0", "::/0"}, true},
		{[]string{wide}, false},
	} {
		before := got.Load()
		err := sendTo(n, srv.URL, c.allowed...)
		switch n := got.Load() - before; {
		case c.ok && (err != nil || n != 1):
			t.Errorf("allowed %v: %v, %d deliveries; want delivered", c.allowed, err, n)
		case !c.ok && (!errors.Is(err, ErrForbiddenAddress) || n != 0):
			t.Errorf("allowed %v: %v, %d deliveries; want ErrForbiddenAddress", c.allowed, err, n)
		}
	}
}

// Metadata addresses stay refused through the real dialer under the widest allow-list.
func TestAllowListNeverOpensMetadata(t *testing.T) {
	for _, a := range []string{"169.254.169.254", "100.100.100.200", "168.63.129.16", "fd00:ec2::254", "64:ff9b::a9fe:a9fe"} {
		err := sendTo(&Network{AllowLoopback: true}, "http://"+hostPort(a, 80)+"/latest/meta-data/", "0.0.0.0/0", "::/0", "169.254.0.0/16", "fd00:ec2::/32")
		if !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("%s: %v, want ErrForbiddenAddress", a, err)
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
	err := sendTo(&Network{}, srv.URL)
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("loopback destination: %v, want ErrForbiddenAddress", err)
	}
	if err := sendTo(&Network{}, srv.URL, "127.0.0.0/8"); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("loopback destination with 127.0.0.0/8 listed: %v, want ErrForbiddenAddress (only the flag opens loopback)", err)
	}
	err = sendTo(&Network{AllowLoopback: true}, srv.URL)
	var e *sink.Error
	if !errors.As(err, &e) || e.Status != 429 || e.RetryAfter != 7*time.Second {
		t.Fatalf("429 with Retry-After: %v", err)
	}
}
