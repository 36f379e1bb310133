package rules_test

import (
	"testing"

	"github.com/cardplane/cardplane/internal/rules"
)

// TestLocation: the three places a rules.yaml sits in, as `cardplane rules lint` and the admission webhook
// report them.
func TestLocation(t *testing.T) {
	e := &rules.Error{Line: 3, Rule: "daily-spend", Message: `spend.window: "Day" is not Daily, Weekly, Monthly or AllTime`}
	tests := []struct {
		loc  rules.Location
		want string
	}{
		{rules.Location{File: "rules.yaml"}, `rules.yaml:3: rule daily-spend: spend.window: "Day" is not Daily, Weekly, Monthly or AllTime`},
		{rules.Location{File: "cm.yaml", Offset: 9}, `cm.yaml:12: rule daily-spend: spend.window: "Day" is not Daily, Weekly, Monthly or AllTime`},
		{rules.Location{File: "cm.yaml", Offset: -1}, `cm.yaml: rules.yaml line 3: rule daily-spend: spend.window: "Day" is not Daily, Weekly, Monthly or AllTime`},
	}
	for _, tt := range tests {
		if got := tt.loc.Problem(e); got != tt.want {
			t.Errorf("%+v: %s\nwant %s", tt.loc, got, tt.want)
		}
	}
	if got := (rules.Location{File: "cm.yaml", Offset: 9}).Problem(&rules.Error{Message: "the rule set is empty"}); got != "cm.yaml: the rule set is empty" {
		t.Errorf("a problem of no line: %s", got)
	}
	if got := (rules.Location{File: "rules.yaml"}).Lint([]byte("rules: []\n")); len(got) != 0 {
		t.Errorf("a valid set: %v", got)
	}
}
