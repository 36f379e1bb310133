// Package pan reduces card numbers to what cardplane may keep (BIN and last four digits) and finds full card
// numbers in text, for the leak scans. Adapters call Reduce at their boundary so a full PAN never reaches the
// event model.
package pan

import (
	"regexp"
	"strings"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/text"
)

// Reduce keeps the BIN (first 6 digits) and last 4 of a full or masked card number, e.g. "4111 1111 1111 1111",
// "411111******1111" or "•••• 7907". It returns nil when nothing usable is present.
func Reduce(number string) *cardsv1alpha1.MaskedNumber {
	s := strings.TrimSpace(number)
	if s == "" {
		return nil
	}
	lead, trail := leadingDigits(s), trailingDigits(s)
	m := &cardsv1alpha1.MaskedNumber{}
	if len(trail) >= 4 {
		m.Last4 = trail[len(trail)-4:]
	}
	// A BIN is only taken from a string that starts with at least 6 digits (a full PAN or a "411111****" mask).
	if len(lead) >= 6 && (len(lead) < len(digitsOnly(s)) || len(lead) >= 12) {
		m.BIN = lead[:6]
	}
	if m.Last4 == "" && m.BIN == "" {
		return nil
	}
	return m
}

// Last4 returns the last four digits of a number, full or masked, or "".
func Last4(number string) string {
	if m := Reduce(number); m != nil {
		return m.Last4
	}
	return ""
}

func digitsOnly(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// leadingDigits collects digits from the start, skipping spaces and dashes, up to the first mask character.
func leadingDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-':
		default:
			return b.String()
		}
	}
	return b.String()
}

func trailingDigits(s string) string {
	rs := []rune(s)
	var out []rune
	for i := len(rs) - 1; i >= 0; i-- {
		r := rs[i]
		switch {
		case r >= '0' && r <= '9':
			out = append([]rune{r}, out...)
		case r == ' ' || r == '-':
		default:
			return string(out)
		}
	}
	return string(out)
}

// Clean prepares provider free text for storage or a message: any full card number in it is removed, and it is
// shortened to at most n bytes on a rune boundary.
func Clean(s string, n int) string { return text.Clip(Redact(s), n) }

var digitRun = regexp.MustCompile(`[0-9][0-9 -]{11,30}[0-9]`)

// Redact replaces every full card number in free text (a reason, a description, a merchant name) with
// "[card number removed]": providers sometimes type one there, and it must not be stored.
func Redact(text string) string {
	if len(text) < 13 {
		return text
	}
	return digitRun.ReplaceAllStringFunc(text, func(run string) string {
		if len(Find(run)) > 0 {
			return "[card number removed]"
		}
		return run
	})
}

// Find returns every Luhn-valid run of 13 to 19 digits in text (spaces and dashes allowed between digits):
// what a leaked card number looks like.
func Find(text string) []string {
	var found []string
	for _, run := range digitRun.FindAllString(text, -1) {
		d := digitsOnly(run)
		var inRun []string
		for n := 19; n >= 13 && len(inRun) == 0; n-- {
			for i := 0; i+n <= len(d); i++ {
				if Luhn(d[i : i+n]) {
					inRun = append(inRun, d[i:i+n])
					i += n - 1
				}
			}
		}
		found = append(found, inRun...)
	}
	return found
}

// Luhn reports whether digits pass the Luhn check.
func Luhn(digits string) bool {
	if len(digits) < 2 {
		return false
	}
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		c := digits[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
