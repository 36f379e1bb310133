package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
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

// Add records an approved authorization in every window of windows, in the transaction's currency (replacing
// windows whose start has passed, of every currency), appends its ID (AuthorizationID, else ID) to
// RecentAuthorizations (bounded to the newest 64), and returns false when the ID is already there: nothing is
// added. It also returns false, adding nothing, when s is nil or the amount is not a usable decimal (Evaluate
// declines those). A transaction with neither ID is counted but cannot be deduplicated. At most 32 windows are
// kept: beyond that the oldest windows of other currencies go first.
func Add(s *cardsv1alpha1.CardSpend, windows []cardsv1alpha1.SpendWindowKind, tx Transaction, now time.Time, tz *time.Location) bool {
	if s == nil {
		return false
	}
	if tz == nil {
		tz = time.UTC
	}
	key := authorizationKey(tx)
	if key != "" && slices.Contains(s.RecentAuthorizations, key) {
		return false
	}
	amount, currency, ok := txAmount(tx)
	if !ok {
		return false
	}
	ws := newWindowStarts(now, tz)
	s.Windows = slices.DeleteFunc(s.Windows, func(sw cardsv1alpha1.SpendWindow) bool { return !ws.current(&sw) })
	var done []cardsv1alpha1.SpendWindowKind
	for _, w := range windows {
		if slices.Contains(done, w) || !slices.Contains(windowOrder, w) {
			continue
		}
		done = append(done, w)
		i := slices.IndexFunc(s.Windows, func(sw cardsv1alpha1.SpendWindow) bool { return sw.Window == w && sw.Currency == currency })
		if i < 0 {
			sw := cardsv1alpha1.SpendWindow{Window: w, Currency: currency, Amount: money.Format(decimal.Zero, currency)}
			if w != cardsv1alpha1.SpendAllTime {
				sw.Start = &metav1.Time{Time: ws.of(w).UTC()}
			}
			s.Windows = append(s.Windows, sw)
			i = len(s.Windows) - 1
		}
		sum, err := decimal.NewFromString(string(s.Windows[i].Amount))
		if err != nil {
			sum = decimal.Zero
		}
		s.Windows[i].Amount = money.Format(sum.Add(amount), currency)
		s.Windows[i].Count++
	}
	for len(s.Windows) > MaxSpendWindows {
		i := slices.IndexFunc(s.Windows, func(sw cardsv1alpha1.SpendWindow) bool { return sw.Currency != currency })
		if i < 0 {
			i = 0
		}
		s.Windows = slices.Delete(s.Windows, i, i+1)
	}
	if key != "" {
		s.RecentAuthorizations = append(s.RecentAuthorizations, key)
		if n := len(s.RecentAuthorizations); n > MaxRecentAuthorizations {
			s.RecentAuthorizations = slices.Clone(s.RecentAuthorizations[n-MaxRecentAuthorizations:])
		}
	}
	return true
}

// authorizationKey is what RecentAuthorizations remembers: the authorization ID, else the transaction ID; an ID
// longer than the API's 128 characters is remembered by its SHA-256.
func authorizationKey(tx Transaction) string {
	key := tx.AuthorizationID
	if key == "" {
		key = tx.ID
	}
	if len(key) > 128 {
		sum := sha256.Sum256([]byte(key))
		key = "sha256:" + hex.EncodeToString(sum[:])
	}
	return key
}
