package rules

import (
	"k8s.io/apimachinery/pkg/labels"
)

// SelectorOf reads the selector of a rule set that may not compile, to know which cards a broken set would
// govern: they are declined rather than left to other sets or to no rule at all. When the selector itself
// cannot be read, the set governs every card of its namespace (fail closed).
func SelectorOf(data []byte) labels.Selector {
	p := &parser{}
	root, err := p.document(data)
	if err != nil {
		return labels.Everything()
	}
	f := p.mapping(root, "", "selector")
	v := f["selector"]
	if v == nil {
		return labels.Everything()
	}
	p.errs = nil
	sel := p.selector(v)
	if len(p.errs) > 0 {
		return labels.Everything()
	}
	return sel
}
