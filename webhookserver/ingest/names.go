package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Object names are deterministic functions of provider IDs, so every replica writes the same object for the
// same card or transaction and a duplicate callback finds what the first one wrote.

const maxCardName = 63 // card names are also label values (cards.cardplane.io/card)

// sanitize lowercases id and turns every run of characters outside [a-z0-9] into one dash.
func sanitize(id string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(id) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.TrimRight(b.String(), "-")
	if s == "" {
		s = "x"
	}
	return s
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

// names returns the readable name of an object for a provider ID and the collision-proof alternative used
// when the readable name is taken by an object with a different ID (IDs that differ only in case or
// punctuation). Names longer than max are shortened and always carry the hash.
// hashKey is what the hash covers: the endpoint and the ID, so two endpoints writing into one namespace never
// share an object.
func names(prefix, id, hashKey string, maxLen int) (readable, hashed string) {
	base := prefix + "-" + sanitize(id)
	h := shortHash(hashKey)
	if len(base) > maxLen {
		cut := strings.TrimRight(base[:maxLen-len(h)-1], "-")
		return cut + "-" + h, cut + "-" + h
	}
	hashed = base + "-" + h
	if len(hashed) > maxLen {
		hashed = strings.TrimRight(base[:maxLen-len(h)-1], "-") + "-" + h
	}
	return base, hashed
}

// HolderLabel is the label value for a holder ID: a hash, so no holder ID appears in labels.
func HolderLabel(holderID string) string {
	sum := sha256.Sum256([]byte(holderID))
	return hex.EncodeToString(sum[:12])
}

// CardNames are the readable and the collision-proof object names of an endpoint's card.
func CardNames(endpointNamespace, endpointName, cardID string) (readable, hashed string) {
	return names(endpointName, cardID, endpointNamespace+"/"+endpointName+"/"+cardID, maxCardName)
}
