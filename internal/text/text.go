// Package text holds the one string helper every layer needs: shortening to an API bound without splitting
// a UTF-8 character.
package text

import "unicode/utf8"

// Clip shortens s to at most n bytes without splitting a UTF-8 character.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
