package mapping

import (
	"encoding/json"
	"go/build"
	"strings"
	"testing"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// TestImports keeps the package free of the adapter contract and endpointconfig: endpointconfig calls
// Compile, so importing either would be a cycle.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{
		"github.com/cardplane/cardplane/api/v1alpha1":        true,
		"github.com/cardplane/cardplane/internal/money":      true,
		"github.com/cardplane/cardplane/internal/pan":        true,
		"github.com/cardplane/cardplane/webhookserver/event": true,
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/cardplane/") && !allowed[imp] {
			t.Errorf("imports %s", imp)
		}
	}
}

// TestJSONNumbers: no number becomes a double.
func TestJSONNumbers(t *testing.T) {
	// As adapter.Decode parses: with UseNumber.
	var body any
	dec := json.NewDecoder(strings.NewReader(`{"a":12,"b":12.50,"c":-1e3,"d":99999999999999999999,"e":[0.1,-7],"f":null}`))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		t.Fatal(err)
	}
	m := celJSON(body).(map[string]any)
	want := map[string]any{"a": int64(12), "b": "12.50", "c": "-1e3", "d": "99999999999999999999", "f": nil}
	for k, w := range want {
		if m[k] != w {
			t.Errorf("%s: got %#v, want %#v", k, m[k], w)
		}
	}
	if e := m["e"].([]any); e[0] != "0.1" || e[1] != int64(-7) {
		t.Errorf("e: got %#v", e)
	}
}

func TestTimes(t *testing.T) {
	for in, w := range map[string]string{
		"1718000000":                "2024-06-10T06:13:20Z",
		"1718000000123":             "2024-06-10T06:13:20.123Z",
		"2024-06-10T08:13:20+02:00": "2024-06-10T06:13:20Z",
	} {
		got, err := parseTime("t", in)
		if err != nil || got.Format(time.RFC3339Nano) != w {
			t.Errorf("%s: got %v %v, want %s", in, got, err, w)
		}
	}
	if _, err := parseTime("t", "2024-06-10 08:13:20"); err == nil {
		t.Error("a time without zone was accepted")
	}
}

// TestDecodeDirect uses Decode without the adapter, as the simulator or a dry run could.
func TestDecodeDirect(t *testing.T) {
	m, err := Compile(&cardsv1alpha1.GenericMapping{
		EventType:  "body.kind",
		OccurredAt: "timestamp(body.at)",
		Events: []cardsv1alpha1.GenericEventRule{{EventTypes: []string{"bal"}, Kind: KindBalance,
			Fields: map[string]string{"cardID": "body.card", "balanceMinor": "body.cents", "currency": "'KWD'"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(`{"kind":"bal","at":"2024-06-10T06:13:20Z","card":42,"cents":-12345}`))
	dec.UseNumber()
	var body any
	if err := dec.Decode(&body); err != nil {
		t.Fatal(err)
	}
	res, err := m.Decode(body, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := res.Events[0]
	if ev.CardID != "42" || ev.Balance.Available != (cardsv1alpha1.Money{Value: "-12.345", Currency: "KWD"}) ||
		!ev.OccurredAt.Equal(time.Date(2024, 6, 10, 6, 13, 20, 0, time.UTC)) || ev.ID != "" {
		t.Errorf("got %+v %+v", ev, ev.Balance)
	}
}
