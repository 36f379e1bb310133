// Package money parses the amounts providers send (integer cents, JSON numbers, decimal strings) into exact
// decimals. Nothing here ever goes through a float. Decimal strings use a point; a comma (a decimal comma or a
// thousands separator, which cannot be told apart) is refused.
package money

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// minorUnits are the ISO 4217 exponents that differ from 2.
var minorUnits = map[string]int32{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0, "RWF": 0,
	"UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3, "CLF": 4, "UYW": 4,
}

// Exponent is the number of minor-unit digits of an ISO 4217 currency (2 unless listed).
func Exponent(currency string) int32 {
	if e, ok := minorUnits[currency]; ok {
		return e
	}
	return 2
}

// Currency normalizes a currency code to ISO 4217 form, or fails.
func Currency(s string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(s))
	if len(c) != 3 || strings.Trim(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return "", fmt.Errorf("currency %q is not an ISO 4217 code", s)
	}
	return c, nil
}

// Parse reads a decimal from a JSON number (decoded with UseNumber), a string or an integer.
// Floats are refused: a float64 here means the JSON was decoded without UseNumber, losing exactness.
func Parse(v any) (decimal.Decimal, error) {
	switch x := v.(type) {
	case json.Number:
		return parseString(string(x))
	case string:
		return parseString(x)
	case int:
		return decimal.NewFromInt(int64(x)), nil
	case int64:
		return decimal.NewFromInt(x), nil
	case nil:
		return decimal.Decimal{}, fmt.Errorf("amount is missing")
	default:
		return decimal.Decimal{}, fmt.Errorf("amount %v (%T) is not a decimal number", v, v)
	}
}

func parseString(s string) (decimal.Decimal, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return decimal.Decimal{}, fmt.Errorf("amount is empty")
	}
	// "12,50" is 12.50 in much of the world and "1,250" is 1250 in the rest: a comma cannot be read safely
	// either way, and no provider documents one, so it is refused rather than guessed.
	if strings.Contains(s, ",") {
		return decimal.Decimal{}, fmt.Errorf("amount %q contains a comma: send a plain decimal with a point and no thousands separators", s)
	}
	if strings.ContainsAny(s, "eE") {
		return decimal.Decimal{}, fmt.Errorf("amount %q uses an exponent", s)
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("amount %q is not a decimal number", s)
	}
	return d, nil
}

// Format renders d with at least the currency's minor-unit digits and never rounds.
func Format(d decimal.Decimal, currency string) cardsv1alpha1.Decimal {
	places := Exponent(currency)
	if -d.Exponent() > places {
		places = -d.Exponent()
	}
	return cardsv1alpha1.Decimal(d.StringFixed(places))
}

// Major builds Money from an amount in major units (e.g. "12.50" USD).
func Major(v any, currency string) (*cardsv1alpha1.Money, error) {
	c, err := Currency(currency)
	if err != nil {
		return nil, err
	}
	d, err := Parse(v)
	if err != nil {
		return nil, err
	}
	return &cardsv1alpha1.Money{Value: Format(d, c), Currency: c}, nil
}

// Minor builds Money from an integer amount in the currency's minor units (e.g. 1250 cents).
func Minor(v any, currency string) (*cardsv1alpha1.Money, error) {
	c, err := Currency(currency)
	if err != nil {
		return nil, err
	}
	d, err := Parse(v)
	if err != nil {
		return nil, err
	}
	if !d.IsInteger() {
		return nil, fmt.Errorf("amount %s in minor units is not an integer", d)
	}
	return &cardsv1alpha1.Money{Value: Format(d.Shift(-Exponent(c)), c), Currency: c}, nil
}

// Decimal parses v as a plain exact decimal (no currency), e.g. for crypto amounts and exchange rates.
func Decimal(v any) (cardsv1alpha1.Decimal, error) {
	d, err := Parse(v)
	if err != nil {
		return "", err
	}
	return cardsv1alpha1.Decimal(d.String()), nil
}

// Abs strips the sign of a Money value, for providers that sign amounts by direction.
func Abs(m *cardsv1alpha1.Money) *cardsv1alpha1.Money {
	if m == nil {
		return nil
	}
	return &cardsv1alpha1.Money{Value: cardsv1alpha1.Decimal(strings.TrimPrefix(string(m.Value), "-")), Currency: m.Currency}
}
