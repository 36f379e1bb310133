package rules

import (
	"fmt"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// MissingKey is the problem of a rule-set ConfigMap without rules.yaml in its data (binaryData is not read).
const MissingKey = "the ConfigMap has no data key " + cardsv1alpha1.RuleSetKey

// Location is where a rules.yaml sits, so that its problems are reported at lines of what the user edits.
// `cardplane rules lint` and the admission webhook render problems through it, so a user sees one format.
type Location struct {
	// File starts every message: a file's path, or rules.yaml for the value of a ConfigMap in the cluster.
	File string
	// Offset turns a line of rules.yaml into a line of File: 0 when File is rules.yaml itself, the line of the
	// | indicator for a block scalar in a ConfigMap file, -1 when the value's lines are not the file's (a
	// quoted or plain string), which is then reported as "File: rules.yaml line N".
	Offset int
}

// At renders FILE:LINE for a line of rules.yaml; FILE alone for line 0 (a problem of no line).
func (l Location) At(line int) string {
	switch {
	case line <= 0:
		return l.File
	case l.Offset < 0:
		return fmt.Sprintf("%s: %s line %d", l.File, cardsv1alpha1.RuleSetKey, line)
	default:
		return fmt.Sprintf("%s:%d", l.File, l.Offset+line)
	}
}

// Problem renders one problem as "FILE:LINE: rule NAME: message" (without "rule NAME: " outside a rule).
func (l Location) Problem(e *Error) string {
	msg := e.Message
	if e.Rule != "" {
		msg = "rule " + e.Rule + ": " + msg
	}
	return l.At(e.Line) + ": " + msg
}

// Lint lists every problem of rules.yaml (Validate) in document order, each rendered by Problem; none means
// Parse succeeds.
func (l Location) Lint(data []byte) []string {
	var out []string
	for _, e := range Validate(data) {
		out = append(out, l.Problem(e))
	}
	return out
}
