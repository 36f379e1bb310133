// Package pan reduces card numbers to what cardplane may keep (BIN and last four digits) and finds full card
// numbers in text, for redaction and the leak scans. Adapters call Reduce at their boundary so a full PAN never
// reaches the event model.
//
// # What counts as a card number in text
//
// Find, Redact and Clean share one rule, made so that identifiers are never rewritten:
//
//  1. A number is a maximal run of ASCII digit groups joined by single separators: space, '-', '.', '/', tab or
//     no-break space (U+00A0). "4111 1111 1111 1111", "4111.1111.1111.1111" and "3782 822463 10005" are one
//     number each; two separators in a row, or any other character, end it.
//  2. A number glued to a word is part of an identifier and never a card number: the character right before
//     or after it is a letter, a digit of another script or '_', or a '-' or '/' that itself touches a letter,
//     digit or '_' ("S2506140813104249", "CA-2507250308114804", "4111111111111111_x", "ORD/4111111111111111").
//  3. The whole number is a card number when its digits (separators dropped) are 13 to 19, pass the Luhn check
//     and start with an issuer prefix of a card network (see issuer). A longer run of digits is never searched for
//     13-19 digit windows, so order numbers and timestamps that merely contain a Luhn-valid stretch are kept.
//  4. When the whole number is not one, a stretch of its whole groups may be, so a card number written next to
//     another number ("4111 1111 1111 1111 12/28") is still found. A stretch never splits a group; it is one
//     group, or groups joined by the same separator of which the first has four digits, as card numbers are
//     printed. The longest stretch from the left wins.
package pan

import (
	"strings"
	"unicode"
	"unicode/utf8"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/text"
)

// Removed replaces a card number found in free text.
const Removed = "[card number removed]"

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
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isSeparator reports whether r may stand between two digit groups of one number.
func isSeparator(r rune) bool {
	switch r {
	case ' ', '-', '.', '/', '\t', '\u00a0':
		return true
	}
	return false
}

// leadingDigits collects digits from the start, skipping separators, up to the first mask character.
func leadingDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case isSeparator(r):
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
		case isSeparator(r):
		default:
			return string(out)
		}
	}
	return string(out)
}

// Clean prepares provider free text for storage or a message: any full card number in it is removed, and it is
// shortened to at most n bytes on a rune boundary.
func Clean(s string, n int) string { return text.Clip(Redact(s), n) }

// Redact replaces every full card number in free text (a reason, a description, a merchant name) with
// "[card number removed]": providers sometimes type one there, and it must not be stored. Identifiers are kept
// as they are (see the package documentation for the rule).
func Redact(s string) string {
	found := matches(s)
	if len(found) == 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for _, m := range found {
		b.WriteString(s[last:m.start])
		b.WriteString(Removed)
		last = m.end
	}
	b.WriteString(s[last:])
	return b.String()
}

// Find returns the digits of every full card number in text, in order: what a leaked card number looks like
// (see the package documentation for the rule).
func Find(s string) []string {
	var found []string
	for _, m := range matches(s) {
		found = append(found, digitsOnly(s[m.start:m.end]))
	}
	return found
}

// span is a byte range of text.
type span struct{ start, end int }

// matches returns the byte ranges of the card numbers in s, in order.
func matches(s string) []span {
	if len(s) < 13 {
		return nil
	}
	var out []span
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		groups := number(s, i)
		start, end := groups[0].start, groups[len(groups)-1].end
		i = end
		if !glued(s, start, end) {
			out = append(out, cards(s, groups)...)
		}
	}
	return out
}

// number reads the digit groups of the number starting at s[i] (a digit).
func number(s string, i int) []span {
	var groups []span
	for {
		g := span{start: i}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		g.end = i
		groups = append(groups, g)
		r, size := utf8.DecodeRuneInString(s[i:])
		if size == 0 || !isSeparator(r) || i+size >= len(s) || !isDigit(s[i+size]) {
			return groups
		}
		i += size
	}
}

// isWord reports whether r belongs to a word (an identifier's letters and digits).
func isWord(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// glued reports whether the number s[start:end] touches a word, directly or through a '-' or '/'.
func glued(s string, start, end int) bool {
	before, size := utf8.DecodeLastRuneInString(s[:start])
	if isWord(before) {
		return true
	}
	if before == '-' || before == '/' {
		if r, _ := utf8.DecodeLastRuneInString(s[:start-size]); isWord(r) {
			return true
		}
	}
	after, size := utf8.DecodeRuneInString(s[end:])
	if isWord(after) {
		return true
	}
	if after == '-' || after == '/' {
		if r, _ := utf8.DecodeRuneInString(s[end+size:]); isWord(r) {
			return true
		}
	}
	return false
}

// cards returns the card numbers among a number's groups: the whole number, else stretches of whole groups
// written as card numbers are (see stretch), the longest first, from the left.
func cards(s string, groups []span) []span {
	whole := span{groups[0].start, groups[len(groups)-1].end}
	if isCard(digitsOnly(s[whole.start:whole.end])) {
		return []span{whole}
	}
	var out []span
	for i := 0; i < len(groups); {
		if j := stretch(s, groups, i); j >= 0 {
			out = append(out, span{groups[i].start, groups[j].end})
			i = j + 1
			continue
		}
		i++
	}
	return out
}

// stretch returns the last group j of the longest card number made of groups i..j, or -1. Such a stretch is
// one group, or groups joined by one and the same separator whose first group has four digits (as card
// numbers are printed: 4-4-4-4, 4-6-5, 4-4-4-4-3), so dates and times beside a number are not taken for one.
func stretch(s string, groups []span, i int) int {
	best, n := -1, 0
	var d strings.Builder
	for j := i; j < len(groups); j++ {
		g := s[groups[j].start:groups[j].end]
		if n += len(g); n > 19 {
			break
		}
		if j > i && (groups[i].end-groups[i].start != 4 || s[groups[j-1].end:groups[j].start] != s[groups[i].end:groups[i+1].start]) {
			break
		}
		d.WriteString(g)
		if n >= 13 && isCard(d.String()) {
			best = j
		}
	}
	return best
}

// isCard reports whether digits are a card number: 13-19 digits, an issuer prefix and a valid Luhn check digit.
func isCard(digits string) bool {
	return len(digits) >= 13 && len(digits) <= 19 && issuer(digits) && Luhn(digits)
}

// issuer reports whether digits start with a prefix card networks issue from: 2200-2204 (Mir), 2221-2720
// (Mastercard 2-series), 30 and 34-39 (Diners Club, Amex, JCB), 4 (Visa), 5 (Mastercard, Maestro, Verve),
// 6 (Discover, UnionPay, Maestro, RuPay), 81-82 (RuPay), 8600 (Uzcard), 9792 (Troy) and 9860 (Humo).
// Left out are the prefixes identifiers start with and no network issues debit or credit cards from: 0, 1
// (epoch times, snowflake IDs; UATP airline accounts), 20-21 (years 2000-2199), 2205-2220, 2721-29, 31-33, 7,
// 80, 83-89 and the rest of 9.
func issuer(d string) bool {
	p4 := int(d[0]-'0')*1000 + int(d[1]-'0')*100 + int(d[2]-'0')*10 + int(d[3]-'0')
	switch d[0] {
	case '2':
		return (p4 >= 2200 && p4 <= 2204) || (p4 >= 2221 && p4 <= 2720)
	case '3':
		return d[1] == '0' || d[1] >= '4'
	case '4', '5', '6':
		return true
	case '8':
		return d[1] == '1' || d[1] == '2' || p4 == 8600
	case '9':
		return p4 == 9792 || p4 == 9860
	}
	return false
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
