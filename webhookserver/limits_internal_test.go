package webhookserver

import (
	"net/netip"
	"runtime"
	"testing"
)

// TestLimiterSetsAreBounded: a million distinct source addresses (an attacker's choice) leave the receiver's
// per-source buckets at their bound, and memory with them.
func TestLimiterSetsAreBounded(t *testing.T) {
	s := &Server{}
	s.init()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	base := netip.MustParseAddr("10.0.0.0").As4()
	for i := range 1_000_000 {
		a := base
		a[1], a[2], a[3] = byte(i>>16), byte(i>>8), byte(i)
		s.refusedFrom(netip.AddrFrom4(a)).Allow()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := s.sources.Len(); n != 100_000 {
		t.Errorf("%d source buckets after a million addresses, want the bound 100000", n)
	}
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if grew > 100<<20 {
		t.Errorf("the heap grew %d MiB for a bounded set", grew>>20)
	}
	t.Logf("a million source addresses: %d buckets held, heap grew %d MiB", s.sources.Len(), grew>>20)
}
