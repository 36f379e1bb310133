package projection

import (
	"fmt"
	"net/netip"
	"syscall"

	"code.dny.dev/ssrf"
)

// The server-side request forgery guard. Deliveries reach public addresses only: every range of the IANA IPv4
// and IPv6 Special-Purpose Address Registries is refused, with the lists code.dny.dev/ssrf generates from them
// (ssrf.IPv4DeniedPrefixes; for IPv6, everything outside 2000::/3 and ssrf.IPv6DeniedPrefixes within it). An
// endpoint opens private ranges explicitly with spec.destinationPolicy.allowedCIDRs, and --allow-loopback-
// destinations opens loopback; nothing opens the addresses of NeverAllowed.

// NeverAllowed are the ranges no allow-list opens: this host (loopback, which only --allow-loopback-destinations
// opens, and 0.0.0.0/8 and ::, which connect to it), link-local, and the cloud metadata and host-agent addresses
// outside link-local. The WebhookEndpoint schema refuses an allowedCIDRs entry inside one of them.
var NeverAllowed = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network": 0.0.0.0 connects to this host
	netip.MustParsePrefix("127.0.0.0/8"),        // loopback
	netip.MustParsePrefix("169.254.0.0/16"),     // link-local: 169.254.169.254 (AWS, GCP, Azure, OCI, OpenStack), 169.254.170.2 (ECS)
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud metadata
	netip.MustParsePrefix("168.63.129.16/32"),   // Azure WireServer
	netip.MustParsePrefix("192.0.0.192/32"),     // Oracle Cloud legacy metadata
	netip.MustParsePrefix("::/128"),             // unspecified: connects to this host
	netip.MustParsePrefix("::1/128"),            // loopback
	netip.MustParsePrefix("fe80::/10"),          // link-local
	netip.MustParsePrefix("fd00:ec2::/32"),      // AWS metadata fd00:ec2::254, DNS and time
}

// guard is one address policy, the Control function of a client's dialer.
type guard struct {
	allowed       []netip.Prefix
	allowLoopback bool
	// loopbackOnly lets a confidential message go over plain HTTP to this machine only.
	loopbackOnly bool

	special *ssrf.Guardian
}

func (g *guard) init() {
	var v4, v6 []netip.Prefix
	for _, p := range g.allowed {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	g.special = ssrf.New(ssrf.WithAnyPort(), ssrf.WithAllowedV4Prefixes(v4...), ssrf.WithAllowedV6Prefixes(v6...))
}

func (g *guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return err
	}
	return g.check(ap.Addr())
}

// check refuses an address the policy does not let a delivery connect to.
func (g *guard) check(ip netip.Addr) error {
	ip = ip.WithZone("").Unmap()
	if ip.IsLoopback() {
		if g.allowLoopback {
			return nil
		}
		return fmt.Errorf("%w: %s is loopback", ErrForbiddenAddress, ip)
	}
	if g.loopbackOnly {
		return fmt.Errorf("%w: %s is not loopback", ErrInsecureDestination, ip)
	}
	for _, p := range NeverAllowed {
		if p.Contains(ip) {
			return fmt.Errorf("%w: %s is a link-local, metadata or this-host address (%s), which no allow-list opens", ErrForbiddenAddress, ip, p)
		}
	}
	if err := g.special.SafeAddr(ip); err != nil {
		return fmt.Errorf("%w: %w; open it with spec.destinationPolicy.allowedCIDRs", ErrForbiddenAddress, err)
	}
	// An allow-listed NAT64 or 6to4 address reaches the IPv4 address inside it: that must be allowed too.
	if v4, ok := embeddedIPv4(ip); ok {
		return g.check(v4)
	}
	return nil
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// embeddedIPv4 is the IPv4 address a NAT64 (RFC 6052 well-known prefix) or 6to4 (RFC 3056) address leads to.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	b := ip.As16()
	switch {
	case !ip.Is6():
		return netip.Addr{}, false
	case nat64.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}
