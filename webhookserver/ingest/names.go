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

func hexHash(s string, bytes int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:bytes])
}

// objectNames are the names an object for a provider ID may have.
type objectNames struct {
	// readable is tried first; hashed is used when readable is held by an object with another ID (IDs that
	// differ only in case or punctuation, or a name taken on purpose). Both may be created.
	readable, hashed string
	// legacy are the hashed names of earlier releases: found, never created.
	legacy []string
}

// names returns the names of an object for a provider ID. Names longer than maxLen are shortened and always
// carry the hash. The hash covers the endpoint's namespace, name and UID and the ID: two endpoints writing
// into one namespace never share an object, and the hashed name cannot be worked out by someone who cannot
// read the endpoint (its UID), so it cannot be taken ahead of the callback that needs it. 64 bits make a
// chance collision negligible.
func names(prefix, id, endpoint, uid string, maxLen int) objectNames {
	base := prefix + "-" + sanitize(id)
	withHash := func(h string) string {
		if len(base)+1+len(h) > maxLen {
			return strings.TrimRight(base[:maxLen-len(h)-1], "-") + "-" + h
		}
		return base + "-" + h
	}
	n := objectNames{readable: base, hashed: withHash(hexHash(endpoint+"/"+uid+"/"+id, 8))}
	// Before, the hash was 32 bits of the endpoint and the ID alone.
	legacy := withHash(hexHash(endpoint+"/"+id, 4))
	if len(base) > maxLen {
		n.readable = n.hashed
		legacy = strings.TrimRight(base[:maxLen-9], "-") + "-" + hexHash(endpoint+"/"+id, 4)
	}
	n.legacy = []string{legacy}
	return n
}

// HolderLabel is the label value for a holder ID: a hash, so no holder ID appears in labels.
func HolderLabel(holderID string) string {
	return hexHash(holderID, 12)
}

// cardNames are the names of an endpoint's card.
func cardNames(endpointNamespace, endpointName, uid, cardID string) objectNames {
	return names(endpointName, cardID, endpointNamespace+"/"+endpointName, uid, maxCardName)
}

// transactionNames are the names of an endpoint's transaction.
func transactionNames(endpointNamespace, endpointName, uid, txID string) objectNames {
	return names(endpointName, txID, endpointNamespace+"/"+endpointName, uid, 253)
}

// all lists every name, in the order they are looked at.
func (n objectNames) all() []string {
	out := []string{n.readable}
	if n.hashed != n.readable {
		out = append(out, n.hashed)
	}
	return append(out, n.legacy...)
}
