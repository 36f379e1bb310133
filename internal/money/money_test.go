package money

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestMajorAndMinor(t *testing.T) {
	cases := []struct {
		name     string
		minor    bool
		in       any
		currency string
		want     string
	}{
		{"decimal string", false, "12.5", "usd", "12.50"},
		{"json number", false, json.Number("0.10"), "USD", "0.10"},
		{"keeps extra precision", false, "1.2345", "USD", "1.2345"},
		{"integer", false, json.Number("7"), "EUR", "7.00"},
		{"negative", false, "-3.1", "USD", "-3.10"},
		{"padded", false, " 1234.5 ", "USD", "1234.50"},
		{"plain decimal", false, "12.50", "EUR", "12.50"},
		{"cents", true, json.Number("1250"), "USD", "12.50"},
		{"cents as string", true, "99", "USD", "0.99"},
		{"yen has no minor unit", true, json.Number("500"), "JPY", "500"},
		{"dinar has three", true, json.Number("1005"), "KWD", "1.005"},
		{"big values stay exact", false, "123456789012345678.123456789", "USD", "123456789012345678.123456789"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := Major
			if c.minor {
				f = Minor
			}
			m, err := f(c.in, c.currency)
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Value) != c.want {
				t.Errorf("got %s, want %s", m.Value, c.want)
			}
		})
	}
}

// A comma is refused, never dropped: "12,50" used to become 1250.
func TestCommasRefused(t *testing.T) {
	for _, in := range []any{"12,50", "1,250.00", "1.250,00", json.Number("12,50"), ",5", "1,"} {
		m, err := Major(in, "USD")
		if err == nil {
			t.Errorf("Major(%#v) = %v, want a refusal", in, m.Value)
			continue
		}
		if !strings.Contains(err.Error(), "comma") {
			t.Errorf("Major(%#v): %v, want the comma named", in, err)
		}
		if _, err := Minor(in, "USD"); err == nil {
			t.Errorf("Minor(%#v) accepted", in)
		}
		if _, err := Decimal(in); err == nil {
			t.Errorf("Decimal(%#v) accepted", in)
		}
	}
}

func TestRefusals(t *testing.T) {
	for _, in := range []any{1.5, "abc", "", "1e3", nil, true} {
		if _, err := Major(in, "USD"); err == nil {
			t.Errorf("Major(%#v) accepted", in)
		}
	}
	if _, err := Minor("12.5", "USD"); err == nil {
		t.Error("fractional cents accepted")
	}
	for _, c := range []string{"US", "USDT", "U$D", ""} {
		if _, err := Currency(c); err == nil {
			t.Errorf("currency %q accepted", c)
		}
	}
}
