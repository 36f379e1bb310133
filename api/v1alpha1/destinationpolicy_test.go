package v1alpha1_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/cardplane/cardplane/internal/projection"
)

// The API server refuses the removed allowPrivateDestinations and allow-lists that are not CIDRs or that lie
// inside the ranges no allow-list opens (the same list the sender's guard keeps: they cannot drift apart).
func TestDestinationPolicyIsValidated(t *testing.T) {
	ctx := context.Background()
	createNamespace(t, "destinations")
	n := 0
	withPolicy := func(spec map[string]any) map[string]any {
		spec["provider"], spec["credentialsRef"] = "upay", map[string]any{"name": "c"}
		return spec
	}
	allowed := func(cidrs ...string) map[string]any {
		list := make([]any, len(cidrs))
		for i, c := range cidrs {
			list[i] = c
		}
		return withPolicy(map[string]any{"destinationPolicy": map[string]any{"allowedCIDRs": list}})
	}
	create := func(spec map[string]any) error {
		n++
		ep := endpoint(fmt.Sprintf("policy-%d", n), spec)
		ep.SetNamespace("destinations")
		return env.Client.Create(ctx, ep)
	}

	refused := []struct {
		name string
		spec map[string]any
		want string
	}{
		{"allowPrivateDestinations", withPolicy(map[string]any{"allowPrivateDestinations": true}),
			"allowPrivateDestinations was removed: list the private ranges your destinations need in spec.destinationPolicy.allowedCIDRs"},
		{"not a CIDR", allowed("10.0.0.300/8"), "allowedCIDRs must be CIDRs"},
		{"a host name", allowed("ledger.payments.svc"), "allowedCIDRs must be CIDRs"},
		{"IPv4-mapped", allowed("::ffff:10.0.0.0/104"), "allowedCIDRs must be CIDRs"},
		{"empty", allowed(), "spec.destinationPolicy.allowedCIDRs: Invalid value: 0"},
		{"the metadata address", allowed("10.0.0.0/8", "169.254.169.254/32"), "allowedCIDRs cannot open loopback, link-local or cloud metadata addresses"},
		{"AWS IPv6 metadata", allowed("fd00:ec2::254/128"), "allowedCIDRs cannot open"},
		{"loopback", allowed("127.0.0.1/32"), "allowedCIDRs cannot open"},
	}
	for _, p := range projection.NeverAllowed {
		refused = append(refused, struct {
			name string
			spec map[string]any
			want string
		}{"never allowed " + p.String(), allowed(p.String()), "allowedCIDRs cannot open"})
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) { expectInvalid(t, create(tc.spec), tc.want) })
	}

	tooMany := make([]string, 33)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("10.%d.0.0/16", i)
	}
	expectInvalid(t, create(allowed(tooMany...)), "must have at most 32 items")

	// Wider ranges that cover a never-allowed address are accepted: the guard keeps refusing that address.
	for _, cidrs := range [][]string{{"10.96.0.0/12"}, {"fd00::/8", "192.168.0.0/16"}, {"100.64.0.0/10"}, {"0.0.0.0/0", "::/0"}, {"64:ff9b::/96"}} {
		if err := create(allowed(cidrs...)); err != nil {
			t.Errorf("allowedCIDRs %v refused: %v", cidrs, err)
		}
	}
}
