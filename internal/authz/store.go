// Package authz decides real-time card authorizations from the rule sets in force, and keeps each card's spend
// ledger in the Card's status under the API server's optimistic concurrency, so that any number of receiver
// replicas answering at once never approve past a limit and a restart forgets nothing.
package authz

import (
	"sort"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/cardplane/cardplane/internal/rules"
)

// Store holds the rule sets in force, by namespace and ConfigMap name. Readers never see a half-swapped set:
// a rule set is replaced whole. A version that fails to compile never replaces a good one; where no good
// version is held (a new set, or a replica that started since), the set is held as Invalid and the cards it
// would govern are declined (RULE_SET_INVALID): a broken rule set fails closed, never open.
type Store struct {
	mu     sync.RWMutex
	sets   map[string]map[string]*entry // namespace -> ConfigMap name -> entry
	synced atomic.Bool
}

// entry is one ConfigMap's rule set: the good version in force, or, without one, what is known of the
// broken version.
type entry struct {
	good    *rules.RuleSet
	invalid *Invalid
	uid     types.UID
}

// Invalid is a labelled rule set that does not compile and has no good version in force.
type Invalid struct {
	// Name is "namespace/name" and Version "namespace/name@resourceVersion" of the ConfigMap.
	Name, Version string
	// Selector is the set's selector as far as it could be read; Everything when it could not (fail closed).
	Selector labels.Selector
	// Message says what is wrong (the first compile error, with its line).
	Message string
}

func (s *Store) entry(namespace, name string) *entry {
	if s.sets == nil {
		s.sets = map[string]map[string]*entry{}
	}
	if s.sets[namespace] == nil {
		s.sets[namespace] = map[string]*entry{}
	}
	e := s.sets[namespace][name]
	if e == nil {
		e = &entry{}
		s.sets[namespace][name] = e
	}
	return e
}

// Set puts a compiled rule set in force.
func (s *Store) Set(namespace, name string, rs *rules.RuleSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(namespace, name)
	e.good, e.invalid = rs, nil
}

// SetInvalid records a version that does not compile. A good version in force stays in force and is returned;
// without one, the cards the broken set would govern are declined.
func (s *Store) SetInvalid(namespace, name string, inv *Invalid) (kept *rules.RuleSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(namespace, name)
	if e.good != nil {
		return e.good
	}
	e.invalid = inv
	return nil
}

// SetUID remembers the UID of a ConfigMap, so its removal can be reported on it.
func (s *Store) SetUID(namespace, name string, uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entry(namespace, name).uid = uid
}

// Delete takes a rule set out of force. It reports whether one was held, and the ConfigMap's UID.
func (s *Store) Delete(namespace, name string) (bool, types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.sets[namespace][name]
	if !ok {
		return false, ""
	}
	delete(s.sets[namespace], name)
	return e.good != nil || e.invalid != nil, e.uid
}

// Get returns the good rule set in force under a ConfigMap's name, if any.
func (s *Store) Get(namespace, name string) *rules.RuleSet {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e := s.sets[namespace][name]; e != nil {
		return e.good
	}
	return nil
}

// MarkSynced records that every labelled ConfigMap present at start was loaded (compiled or held as Invalid):
// from then on the store knows every rule in force, and decisions may be answered.
func (s *Store) MarkSynced() { s.synced.Store(true) }

// Synced reports whether the first full sync is done.
func (s *Store) Synced() bool { return s.synced.Load() }

// For returns what governs a card: the good rule sets of its namespace whose selector matches its labels, and
// the invalid ones (no good version) that would match, each ordered by name.
func (s *Store) For(namespace string, cardLabels map[string]string) (good []*rules.RuleSet, invalid []*Invalid) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.sets[namespace]))
	for n := range s.sets[namespace] {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		switch e := s.sets[namespace][n]; {
		case e.good != nil:
			if e.good.Matches(cardLabels) {
				good = append(good, e.good)
			}
		case e.invalid != nil:
			if e.invalid.Selector.Matches(labels.Set(cardLabels)) {
				invalid = append(invalid, e.invalid)
			}
		}
	}
	return good, invalid
}
