package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/money"
)

// The spend ledger (Card status.spend) is pure data here: the caller reads the Card, evaluates, and on an
// approval calls Add and writes the Card back under optimistic concurrency.

// WindowStart is when the window containing now began: midnight (Daily), Monday midnight (Weekly) or midnight of
// the 1st (Monthly) in tz; zero for AllTime. On a day whose midnight a DST change skips, the day starts at its
// first instant (e.g. 01:00).
func WindowStart(w cardsv1alpha1.SpendWindowKind, now time.Time, tz *time.Location) time.Time {
	if tz == nil {
		tz = time.UTC
	}
	y, m, d := now.In(tz).Date()
	switch w {
	case cardsv1alpha1.SpendDaily:
		return startOfDay(y, m, d, tz)
	case cardsv1alpha1.SpendWeekly:
		return startOfDay(y, m, d-(int(now.In(tz).Weekday())+6)%7, tz)
	case cardsv1alpha1.SpendMonthly:
		return startOfDay(y, m, 1, tz)
	}
	return time.Time{}
}

// startOfDay is the first instant of the local date y-m-d in tz (d may be out of range; it is normalized).
func startOfDay(y int, m time.Month, d int, tz *time.Location) time.Time {
	wy, wm, wd := time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Date()
	want := civil(wy, wm, wd)
	dateOf := func(t time.Time) int {
		ty, tm, td := t.In(tz).Date()
		return civil(ty, tm, td)
	}
	t := time.Date(wy, wm, wd, 0, 0, 0, 0, tz)
	if dateOf(t) == want && dateOf(t.Add(-time.Nanosecond)) < want {
		return t
	}
	// Midnight does not exist here (or is repeated): search the first second whose local date is the day.
	lo, hi := t.Add(-48*time.Hour).Unix(), t.Add(48*time.Hour).Unix()
	for lo+1 < hi {
		mid := lo + (hi-lo)/2
		if dateOf(time.Unix(mid, 0)) >= want {
			hi = mid
		} else {
			lo = mid
		}
	}
	return time.Unix(hi, 0).In(tz)
}

func civil(y int, m time.Month, d int) int { return y*10000 + int(m)*100 + d }

// isCurrent reports whether a stored window is the current one, given the start of the current window of its
// kind: AllTime always; others when they started at or after it (a later start is another replica's clock
// running ahead, or a time zone change: still counted).
func isCurrent(sw *cardsv1alpha1.SpendWindow, start time.Time) bool {
	if sw.Window == cardsv1alpha1.SpendAllTime {
		return true
	}
	return sw.Start != nil && sw.Start.Unix() >= start.Unix()
}

// windowStarts are the starts of the current windows, computed once per evaluation.
type windowStarts struct {
	now   time.Time
	tz    *time.Location
	known [4]bool
	start [4]time.Time
}

func newWindowStarts(now time.Time, tz *time.Location) *windowStarts {
	if tz == nil {
		tz = time.UTC
	}
	return &windowStarts{now: now, tz: tz}
}

func (ws *windowStarts) of(w cardsv1alpha1.SpendWindowKind) time.Time {
	i := slices.Index(windowOrder, w)
	if i < 0 {
		return time.Time{}
	}
	if !ws.known[i] {
		ws.start[i], ws.known[i] = WindowStart(w, ws.now, ws.tz), true
	}
	return ws.start[i]
}

func (ws *windowStarts) current(sw *cardsv1alpha1.SpendWindow) bool {
	return isCurrent(sw, ws.of(sw.Window))
}

// Current is the spend of window w in currency as of now: zero when the stored window started before the
// current one (it has rolled over) or is not there.
func Current(s *cardsv1alpha1.CardSpend, w cardsv1alpha1.SpendWindowKind, currency string, now time.Time, tz *time.Location) (amount decimal.Decimal, count int64) {
	return current(s, w, currency, newWindowStarts(now, tz))
}

func current(s *cardsv1alpha1.CardSpend, w cardsv1alpha1.SpendWindowKind, currency string, ws *windowStarts) (decimal.Decimal, int64) {
	if s == nil {
		return decimal.Zero, 0
	}
	for i := range s.Windows {
		sw := &s.Windows[i]
		if sw.Window != w || sw.Currency != currency {
			continue
		}
		if !ws.current(sw) {
			return decimal.Zero, 0
		}
		a, err := decimal.NewFromString(string(sw.Amount))
		if err != nil {
			a = decimal.Zero // the API schema admits only decimals; nothing better to do with a hand-edited one
		}
		return a, sw.Count
	}
	return decimal.Zero, 0
}

// countAll is the count of window w over every currency as of now.
func countAll(s *cardsv1alpha1.CardSpend, w cardsv1alpha1.SpendWindowKind, ws *windowStarts) int64 {
	if s == nil {
		return 0
	}
	var n int64
	for i := range s.Windows {
		if sw := &s.Windows[i]; sw.Window == w && ws.current(sw) {
			n += sw.Count
		}
	}
	return n
}

// Errors of Add.
var (
	// ErrCounted: the ledger counts this authorization already (a provider retry with the same content).
	ErrCounted = errors.New("the authorization is counted already")
	// ErrLedgerFull: counting it would need more windows than the ledger holds, and no current window may go.
	ErrLedgerFull = errors.New("the spend ledger has no room for another window")
	// ErrUnusable: the ledger is nil or the amount is not a usable decimal (Evaluate declines those).
	ErrUnusable = errors.New("nothing to count: no ledger, or an unusable amount")
)

// Add records an approved authorization in every window of windows, in the transaction's currency (dropping
// windows whose start has passed, of every currency), and remembers it in RecentAuthorizations (the newest 64)
// by its key and content, so a retry of the same request is recognized and a request that reuses an ID with
// another amount, currency or merchant is not. A current window is never dropped to make room: when the
// windows would exceed MaxSpendWindows, Add changes nothing and returns ErrLedgerFull. A transaction with
// neither ID is counted but cannot be deduplicated.
func Add(s *cardsv1alpha1.CardSpend, windows []cardsv1alpha1.SpendWindowKind, tx Transaction, now time.Time, tz *time.Location) error {
	if s == nil {
		return ErrUnusable
	}
	entry := authorizationEntry(tx)
	if entry != "" && slices.Contains(s.RecentAuthorizations, entry) {
		return ErrCounted
	}
	amount, currency, ok := txAmount(tx)
	if !ok {
		return ErrUnusable
	}
	ws := newWindowStarts(now, tz)
	kept := slices.DeleteFunc(slices.Clone(s.Windows), func(sw cardsv1alpha1.SpendWindow) bool { return !ws.current(&sw) })
	var done []cardsv1alpha1.SpendWindowKind
	for _, w := range windows {
		if slices.Contains(done, w) || !slices.Contains(windowOrder, w) {
			continue
		}
		done = append(done, w)
		i := slices.IndexFunc(kept, func(sw cardsv1alpha1.SpendWindow) bool { return sw.Window == w && sw.Currency == currency })
		if i < 0 {
			sw := cardsv1alpha1.SpendWindow{Window: w, Currency: currency, Amount: money.Format(decimal.Zero, currency)}
			if w != cardsv1alpha1.SpendAllTime {
				sw.Start = &metav1.Time{Time: ws.of(w).UTC()}
			}
			kept = append(kept, sw)
			i = len(kept) - 1
		}
		kept[i].Amount = money.Format(decimalOf(kept[i].Amount).Add(amount), currency)
		kept[i].Count++
	}
	if len(kept) > MaxSpendWindows {
		return ErrLedgerFull
	}
	s.Windows = kept
	if entry != "" {
		s.RecentAuthorizations = append(s.RecentAuthorizations, entry)
		if n := len(s.RecentAuthorizations); n > MaxRecentAuthorizations {
			s.RecentAuthorizations = slices.Clone(s.RecentAuthorizations[n-MaxRecentAuthorizations:])
		}
	}
	return nil
}

// Remove takes back an authorization Add counted (an approval that was answered as a declining stand-in after
// its ledger write committed): its amount and count leave the current windows, and it is forgotten. It reports
// whether the ledger remembered it; windows that rolled over since keep nothing to take back.
func Remove(s *cardsv1alpha1.CardSpend, windows []cardsv1alpha1.SpendWindowKind, tx Transaction, now time.Time, tz *time.Location) bool {
	entry := authorizationEntry(tx)
	if s == nil || entry == "" || !slices.Contains(s.RecentAuthorizations, entry) {
		return false
	}
	amount, currency, ok := txAmount(tx)
	if !ok {
		return false
	}
	ws := newWindowStarts(now, tz)
	for i := range s.Windows {
		sw := &s.Windows[i]
		if sw.Currency != currency || !slices.Contains(windows, sw.Window) || !ws.current(sw) || sw.Count == 0 {
			continue
		}
		left := decimalOf(sw.Amount).Sub(amount)
		if left.IsNegative() {
			left = decimal.Zero
		}
		sw.Amount, sw.Count = money.Format(left, currency), sw.Count-1
	}
	s.RecentAuthorizations = slices.DeleteFunc(s.RecentAuthorizations, func(e string) bool { return e == entry })
	return true
}

// decimalOf reads a stored amount; the API schema admits only decimals, so a hand-edited one counts as zero.
func decimalOf(d cardsv1alpha1.Decimal) decimal.Decimal {
	v, err := decimal.NewFromString(string(d))
	if err != nil {
		return decimal.Zero
	}
	return v
}

// authorizationEntry is what RecentAuthorizations remembers of an authorization: its key (the authorization
// ID, else the transaction ID; by its SHA-256 when longer than 96 characters) and a fingerprint of its content
// (amount, currency, merchant), "key#fingerprint". "" when the transaction has no ID.
func authorizationEntry(tx Transaction) string {
	key := tx.AuthorizationID
	if key == "" {
		key = tx.ID
	}
	if key == "" {
		return ""
	}
	if len(key) > 96 {
		sum := sha256.Sum256([]byte(key))
		key = "sha256:" + hex.EncodeToString(sum[:])[:64]
	}
	value := string(tx.Amount.Value)
	if amount, currency, ok := txAmount(tx); ok {
		value = string(money.Format(amount, currency)) // "12.5" and "12.50" are the same amount
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{value, strings.ToUpper(tx.Amount.Currency),
		strings.TrimSpace(tx.MCC), strings.TrimSpace(tx.MerchantName), strings.ToUpper(strings.TrimSpace(tx.MerchantCountry))}, "\x00")))
	return key + "#" + hex.EncodeToString(sum[:8])
}
