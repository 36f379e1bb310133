// Package authz decides real-time card authorizations from the rule sets in force, and keeps each card's spend
// ledger in the Card's status under the API server's optimistic concurrency, so that any number of receiver
// replicas answering at once never approve past a limit and a restart forgets nothing.
package authz

import (
	"sort"
	"sync"

	"github.com/cardplane/cardplane/internal/rules"
)

// Store holds the compiled rule sets in force, by namespace. Readers never see a half-swapped set: a rule set
// is replaced whole, and a rule set that fails to compile never reaches the store (the last good one stays).
type Store struct {
	mu   sync.RWMutex
	sets map[string]map[string]*rules.RuleSet // namespace -> ConfigMap name -> set
}

// Set puts a compiled rule set in force.
func (s *Store) Set(namespace, name string, rs *rules.RuleSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sets == nil {
		s.sets = map[string]map[string]*rules.RuleSet{}
	}
	if s.sets[namespace] == nil {
		s.sets[namespace] = map[string]*rules.RuleSet{}
	}
	s.sets[namespace][name] = rs
}

// Delete takes a rule set out of force.
func (s *Store) Delete(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sets[namespace], name)
}

// Get returns the rule set in force under a ConfigMap's name, if any.
func (s *Store) Get(namespace, name string) *rules.RuleSet {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sets[namespace][name]
}

// For returns the rule sets that govern a card: those of its namespace whose selector matches its labels,
// ordered by name.
func (s *Store) For(namespace string, labels map[string]string) []*rules.RuleSet {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.sets[namespace]))
	for n := range s.sets[namespace] {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*rules.RuleSet
	for _, n := range names {
		if rs := s.sets[namespace][n]; rs.Matches(labels) {
			out = append(out, rs)
		}
	}
	return out
}
