package eventfilter

import (
	"encoding/json"
	"strings"
	"testing"
)

func object(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFilterMatchesTheDeliveredObject(t *testing.T) {
	f, err := Compile(`type == "authorization.decided" && object.status.authorization.decision == "Decline" && object.metadata.labels["team"] == "growth"`)
	if err != nil {
		t.Fatal(err)
	}
	declined := object(t, `{"metadata":{"labels":{"team":"growth"}},"status":{"authorization":{"decision":"Decline"}}}`)
	approved := object(t, `{"metadata":{"labels":{"team":"growth"}},"status":{"authorization":{"decision":"Approve"}}}`)
	for _, c := range []struct {
		obj  map[string]any
		typ  string
		want bool
	}{{declined, "authorization.decided", true}, {approved, "authorization.decided", false}, {declined, "transaction.updated", false}} {
		got, err := f.Match(c.obj, c.typ)
		if err != nil || got != c.want {
			t.Errorf("Match(%v, %s) = %t, %v; want %t", c.obj, c.typ, got, err, c.want)
		}
	}
}

func TestFilterErrorsAreReported(t *testing.T) {
	for src, want := range map[string]string{
		`object.status.phase ==`: "filter: Syntax error",
		`object.status.phase`:    "", // dyn: checked when evaluated
		`1 + 1`:                  "must be a bool expression",
		`object.metadata.labels.all(k, object.metadata.labels.all(j, object.metadata.labels.all(i, i == j)))`: "exceeds the limit",
	} {
		_, err := Compile(src)
		switch {
		case want == "" && err != nil:
			t.Errorf("Compile(%q) = %v, want it to compile", src, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("Compile(%q) = %v, want an error containing %q", src, err, want)
		}
	}
	f, err := Compile(`object.status.phase == "Active"`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Match(object(t, `{"metadata":{}}`), "card.updated"); err == nil || !strings.Contains(err.Error(), "no such key") {
		t.Errorf("a missing field: %v, want a no such key error", err)
	}
	f, _ = Compile(`object.status.phase`)
	if _, err := f.Match(object(t, `{"status":{"phase":"Active"}}`), "card.updated"); err == nil || !strings.Contains(err.Error(), "not a bool") {
		t.Errorf("a non-bool result: %v", err)
	}
}

func TestObjectKeepsWholeNumbersInt(t *testing.T) {
	obj, err := Object([]byte(`{"status":{"stateSequence":7,"rate":"1.5","fee":0.25}}`))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Compile(`object.status.stateSequence % 2 == 1 && object.status.fee < 1.0`)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := f.Match(obj, "card.updated"); !ok || err != nil {
		t.Errorf("Match = %t, %v; want true", ok, err)
	}
}
