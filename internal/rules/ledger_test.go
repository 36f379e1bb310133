package rules

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

func zone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func at(t testing.TB, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestWindowStart covers the boundaries: the last millisecond of a day against the first, Sunday to Monday,
// month ends (leap and not), and days a DST change makes 23 or 25 hours long or whose midnight it skips.
func TestRulesWindowStart(t *testing.T) {
	const (
		daily   = cardsv1alpha1.SpendDaily
		weekly  = cardsv1alpha1.SpendWeekly
		monthly = cardsv1alpha1.SpendMonthly
	)
	cases := []struct {
		name   string
		tz     string
		window cardsv1alpha1.SpendWindowKind
		now    string
		want   string // UTC
	}{
		{"utc", "UTC", daily, "2026-03-11T12:00:00Z", "2026-03-11T00:00:00Z"},
		{"last millisecond of a Berlin day", "Europe/Berlin", daily, "2026-03-10T23:59:59.999+01:00", "2026-03-09T23:00:00Z"},
		{"first instant of the next Berlin day", "Europe/Berlin", daily, "2026-03-11T00:00:00+01:00", "2026-03-10T23:00:00Z"},
		{"the same instant is still yesterday in UTC", "UTC", daily, "2026-03-11T00:00:00+01:00", "2026-03-10T00:00:00Z"},
		{"ahead of UTC: already tomorrow in Tokyo", "Asia/Tokyo", daily, "2026-03-10T15:00:00Z", "2026-03-10T15:00:00Z"},
		{"behind UTC", "America/New_York", daily, "2026-03-11T03:59:59.999Z", "2026-03-10T04:00:00Z"},
		{"Sunday night belongs to the week that began Monday", "Europe/Berlin", weekly, "2026-03-15T23:59:59.999+01:00", "2026-03-08T23:00:00Z"},
		{"Monday midnight starts a week", "Europe/Berlin", weekly, "2026-03-16T00:00:00+01:00", "2026-03-15T23:00:00Z"},
		{"Monday itself", "UTC", weekly, "2026-03-16T08:00:00Z", "2026-03-16T00:00:00Z"},
		{"a week across the new year", "UTC", weekly, "2026-01-01T10:00:00Z", "2025-12-29T00:00:00Z"},
		{"Feb 28 of a common year", "UTC", monthly, "2027-02-28T23:59:59.999Z", "2027-02-01T00:00:00Z"},
		{"Mar 1 after a common February", "UTC", monthly, "2027-03-01T00:00:00Z", "2027-03-01T00:00:00Z"},
		{"Feb 29 of a leap year (month)", "Europe/Berlin", monthly, "2028-02-29T23:59:59.999+01:00", "2028-01-31T23:00:00Z"},
		{"Feb 29 of a leap year (day)", "Europe/Berlin", daily, "2028-02-29T23:59:59.999+01:00", "2028-02-28T23:00:00Z"},
		{"Mar 1 after a leap February", "Europe/Berlin", monthly, "2028-03-01T00:00:00+01:00", "2028-02-29T23:00:00Z"},
		{"Dec 31 to Jan 1", "Europe/Berlin", monthly, "2027-01-01T00:00:00+01:00", "2026-12-31T23:00:00Z"},
		{"month start in Berlin while UTC is still in January", "Europe/Berlin", monthly, "2026-01-31T23:30:00Z", "2026-01-31T23:00:00Z"},
		{"spring forward: a 23-hour Berlin day starts at 00:00 CET", "Europe/Berlin", daily, "2026-03-29T23:30:00+02:00", "2026-03-28T23:00:00Z"},
		{"spring forward: the next day starts at 00:00 CEST", "Europe/Berlin", daily, "2026-03-30T00:00:00+02:00", "2026-03-29T22:00:00Z"},
		{"fall back: a 25-hour Berlin day", "Europe/Berlin", daily, "2026-10-25T23:59:59.999+01:00", "2026-10-24T22:00:00Z"},
		{"fall back: the week holding it", "Europe/Berlin", weekly, "2026-10-25T23:59:59.999+01:00", "2026-10-18T22:00:00Z"},
		{"New York spring forward", "America/New_York", daily, "2026-03-08T12:00:00-04:00", "2026-03-08T05:00:00Z"},
		{"Santiago skips midnight: the day starts at 01:00", "America/Santiago", daily, "2026-09-06T12:00:00-03:00", "2026-09-06T04:00:00Z"},
		{"Santiago: before the skipped midnight", "America/Santiago", daily, "2026-09-05T23:59:59.999-04:00", "2026-09-05T04:00:00Z"},
		{"Havana skips midnight", "America/Havana", daily, "2026-03-08T10:00:00-04:00", "2026-03-08T05:00:00Z"},
		{"Havana repeats midnight: the first one", "America/Havana", daily, "2026-11-01T00:30:00-05:00", "2026-11-01T04:00:00Z"},
		{"Beirut skips midnight (monthly unaffected)", "Asia/Beirut", daily, "2026-03-29T12:00:00+03:00", "2026-03-28T22:00:00Z"},
		{"all time", "Europe/Berlin", cardsv1alpha1.SpendAllTime, "2026-03-11T12:00:00Z", "0001-01-01T00:00:00Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := WindowStart(c.window, at(t, c.now), zone(t, c.tz))
			if want := at(t, c.want); !got.Equal(want) {
				t.Errorf("got %s (%s), want %s", got.UTC().Format(time.RFC3339), got.Format(time.RFC3339), c.want)
			}
		})
	}
	if got := WindowStart(daily, at(t, "2026-03-11T12:00:00+05:00"), nil); !got.Equal(at(t, "2026-03-11T00:00:00Z")) {
		t.Errorf("nil time zone is UTC: got %s", got)
	}
}

// TestWindowStartEveryDay: in zones with DST changes, every day of several years starts at an instant whose local
// date is that day and one nanosecond before which is the previous day.
func TestRulesWindowStartEveryDay(t *testing.T) {
	for _, name := range []string{"Europe/Berlin", "America/Santiago", "America/Havana", "Asia/Beirut", "Australia/Lord_Howe", "Pacific/Apia"} {
		tz := zone(t, name)
		for d := time.Date(2010, 1, 1, 12, 0, 0, 0, tz); d.Year() < 2030; d = d.AddDate(0, 0, 1) {
			s := WindowStart(cardsv1alpha1.SpendDaily, d, tz)
			y, m, day := d.Date()
			if sy, sm, sd := s.In(tz).Date(); sy != y || sm != m || sd != day {
				t.Fatalf("%s %s: start %s is another day", name, d.Format(time.DateOnly), s.In(tz))
			}
			if py, pm, pd := s.Add(-time.Nanosecond).In(tz).Date(); py == y && pm == m && pd == day {
				t.Fatalf("%s %s: start %s is not the first instant of the day", name, d.Format(time.DateOnly), s.In(tz))
			}
		}
	}
}

func window(w cardsv1alpha1.SpendWindowKind, currency, amount string, count int64, start string) cardsv1alpha1.SpendWindow {
	sw := cardsv1alpha1.SpendWindow{Window: w, Currency: currency, Amount: cardsv1alpha1.Decimal(amount), Count: count}
	if start != "" {
		ts, err := time.Parse(time.RFC3339, start)
		if err != nil {
			panic(err)
		}
		sw.Start = &metav1.Time{Time: ts}
	}
	return sw
}

func TestRulesCurrent(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	now := at(t, "2026-03-11T00:30:00+01:00") // Wednesday, just after midnight in Berlin
	s := &cardsv1alpha1.CardSpend{Windows: []cardsv1alpha1.SpendWindow{
		window(cardsv1alpha1.SpendDaily, "EUR", "40.00", 2, "2026-03-10T23:00:00Z"),   // today in Berlin
		window(cardsv1alpha1.SpendDaily, "USD", "70.00", 3, "2026-03-09T23:00:00Z"),   // yesterday: rolled over
		window(cardsv1alpha1.SpendWeekly, "EUR", "140.00", 7, "2026-03-08T23:00:00Z"), // this week
		window(cardsv1alpha1.SpendMonthly, "EUR", "900.00", 20, "2026-03-01T00:00:00Z"),
		window(cardsv1alpha1.SpendAllTime, "EUR", "5000.00", 99, ""),
		window(cardsv1alpha1.SpendWeekly, "USD", "1.00", 1, ""), // no start: not current
	}}
	cases := []struct {
		w        cardsv1alpha1.SpendWindowKind
		currency string
		amount   string
		count    int64
	}{
		{cardsv1alpha1.SpendDaily, "EUR", "40", 2},
		{cardsv1alpha1.SpendDaily, "USD", "0", 0},
		{cardsv1alpha1.SpendDaily, "GBP", "0", 0},
		{cardsv1alpha1.SpendWeekly, "EUR", "140", 7},
		{cardsv1alpha1.SpendWeekly, "USD", "0", 0},
		// Stored at UTC midnight, which is after the Berlin month start: another replica's clock or a time zone
		// change; counted rather than forgotten.
		{cardsv1alpha1.SpendMonthly, "EUR", "900", 20},
		{cardsv1alpha1.SpendAllTime, "EUR", "5000", 99},
	}
	for _, c := range cases {
		amount, count := Current(s, c.w, c.currency, now, berlin)
		if !amount.Equal(decimal.RequireFromString(c.amount)) || count != c.count {
			t.Errorf("%s %s: got %s x%d, want %s x%d", c.w, c.currency, amount, count, c.amount, c.count)
		}
	}
	// The same ledger read in UTC: it is still Tuesday there, so the USD day counts and the EUR one is ahead.
	if amount, count := Current(s, cardsv1alpha1.SpendDaily, "USD", now, time.UTC); amount.String() != "0" || count != 0 {
		t.Errorf("USD daily in UTC: %s x%d", amount, count)
	}
	if amount, count := Current(nil, cardsv1alpha1.SpendDaily, "EUR", now, berlin); !amount.IsZero() || count != 0 {
		t.Error("nil ledger")
	}
}

func TestRulesAdd(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	windows := []cardsv1alpha1.SpendWindowKind{cardsv1alpha1.SpendDaily, cardsv1alpha1.SpendMonthly, cardsv1alpha1.SpendAllTime}
	s := &cardsv1alpha1.CardSpend{}
	tx := purchase(withAmount("12.5", "EUR"))
	now := at(t, "2026-03-31T23:59:59.999+02:00") // the last millisecond of March in Berlin
	if err := Add(s, windows, tx, now, berlin); err != nil {
		t.Fatalf("first Add: %v", err)
	}
	want := &cardsv1alpha1.CardSpend{
		Windows: []cardsv1alpha1.SpendWindow{
			window(cardsv1alpha1.SpendDaily, "EUR", "12.50", 1, "2026-03-30T22:00:00Z"),
			window(cardsv1alpha1.SpendMonthly, "EUR", "12.50", 1, "2026-02-28T23:00:00Z"),
			window(cardsv1alpha1.SpendAllTime, "EUR", "12.50", 1, ""),
		},
		RecentAuthorizations: []string{authorizationEntry(tx)},
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got  %+v\nwant %+v", s, want)
	}
	if !strings.HasPrefix(s.RecentAuthorizations[0], "au-1#") {
		t.Errorf("entry %q does not start with the authorization ID", s.RecentAuthorizations[0])
	}
	// A retry of the same authorization adds nothing, however its amount is spelled.
	if err := Add(s, windows, purchase(withAmount("12.50", "EUR")), now, berlin); !errors.Is(err, ErrCounted) || !reflect.DeepEqual(s, want) {
		t.Fatalf("retry counted (%v): %+v", err, s)
	}
	// A second authorization in the same windows.
	tx2 := purchase(withAmount("0.75", "EUR"), func(tx *Transaction) { tx.ID, tx.AuthorizationID = "tx-2", "au-2" })
	if err := Add(s, windows, tx2, now, berlin); err != nil {
		t.Fatalf("second Add: %v", err)
	}
	if a, c := Current(s, cardsv1alpha1.SpendDaily, "EUR", now, berlin); a.String() != "13.25" || c != 2 {
		t.Errorf("daily after two: %s x%d", a, c)
	}
	// One millisecond later it is April: the daily and monthly windows start over, all time keeps counting.
	april := now.Add(time.Millisecond)
	if a, c := Current(s, cardsv1alpha1.SpendDaily, "EUR", april, berlin); !a.IsZero() || c != 0 {
		t.Errorf("daily in April before Add: %s x%d", a, c)
	}
	tx3 := purchase(withAmount("1", "EUR"), func(tx *Transaction) { tx.ID, tx.AuthorizationID = "tx-3", "" })
	if err := Add(s, windows, tx3, april, berlin); err != nil {
		t.Fatalf("third Add: %v", err)
	}
	want = &cardsv1alpha1.CardSpend{
		Windows: []cardsv1alpha1.SpendWindow{
			window(cardsv1alpha1.SpendAllTime, "EUR", "14.25", 3, ""),
			window(cardsv1alpha1.SpendDaily, "EUR", "1.00", 1, "2026-03-31T22:00:00Z"),
			window(cardsv1alpha1.SpendMonthly, "EUR", "1.00", 1, "2026-03-31T22:00:00Z"),
		},
		RecentAuthorizations: []string{authorizationEntry(tx), authorizationEntry(tx2), authorizationEntry(tx3)},
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("after rollover got  %+v\nwant %+v", s, want)
	}
	if !strings.HasPrefix(s.RecentAuthorizations[2], "tx-3#") {
		t.Errorf("no authorization ID: the entry %q should start with the transaction ID", s.RecentAuthorizations[2])
	}
}

// TestRulesRetriesAreRecognizedByContent: a request that reuses an authorization ID with another amount,
// currency or merchant is a new authorization (an incremental one), evaluated and counted; only the same content
// is a retry.
func TestRulesRetriesAreRecognizedByContent(t *testing.T) {
	s := &cardsv1alpha1.CardSpend{}
	daily := []cardsv1alpha1.SpendWindowKind{cardsv1alpha1.SpendDaily}
	first := purchase(withAmount("10", "USD"))
	if err := Add(s, daily, first, t0, time.UTC); err != nil {
		t.Fatal(err)
	}
	for name, tx := range map[string]Transaction{
		"a larger amount (incremental authorization)": purchase(withAmount("25", "USD")),
		"another currency":                            purchase(withAmount("10", "EUR")),
		"another merchant":                            purchase(withAmount("10", "USD"), func(tx *Transaction) { tx.MerchantName = "Casino" }),
		"another MCC":                                 purchase(withAmount("10", "USD"), func(tx *Transaction) { tx.MCC = "7995" }),
	} {
		if Counted(s, tx) {
			t.Errorf("%s: recognized as a retry of the first", name)
		}
	}
	if !Counted(s, purchase(withAmount("10.00", "USD"))) {
		t.Error("the same request is not recognized as a retry")
	}
	if err := Add(s, daily, purchase(withAmount("25", "USD")), t0, time.UTC); err != nil {
		t.Fatalf("the incremental authorization was not counted: %v", err)
	}
	if a, c := Current(s, cardsv1alpha1.SpendDaily, "USD", t0, time.UTC); a.String() != "35" || c != 2 {
		t.Errorf("daily %s x%d, want 35 x2", a, c)
	}
}

// TestRulesRemove: an authorization taken back leaves the windows and the remembered entries.
func TestRulesRemove(t *testing.T) {
	s := &cardsv1alpha1.CardSpend{}
	daily := []cardsv1alpha1.SpendWindowKind{cardsv1alpha1.SpendDaily, cardsv1alpha1.SpendAllTime}
	a, b := purchase(withAmount("10", "USD")), purchase(withAmount("4", "USD"), func(tx *Transaction) { tx.AuthorizationID = "au-2" })
	for _, tx := range []Transaction{a, b} {
		if err := Add(s, daily, tx, t0, time.UTC); err != nil {
			t.Fatal(err)
		}
	}
	if !Remove(s, daily, a, t0, time.UTC) || Remove(s, daily, a, t0, time.UTC) {
		t.Fatal("Remove should take the authorization back once")
	}
	for _, w := range daily {
		if amount, count := Current(s, w, "USD", t0, time.UTC); amount.String() != "4" || count != 1 {
			t.Errorf("%s after Remove: %s x%d, want 4 x1", w, amount, count)
		}
	}
	if Counted(s, a) || !Counted(s, b) {
		t.Errorf("remembered after Remove: %q", s.RecentAuthorizations)
	}
}

func TestRulesAddBounds(t *testing.T) {
	s := &cardsv1alpha1.CardSpend{}
	for i := range 100 {
		tx := purchase(func(tx *Transaction) { tx.AuthorizationID = fmt.Sprintf("au-%03d", i) })
		if err := Add(s, []cardsv1alpha1.SpendWindowKind{cardsv1alpha1.SpendDaily}, tx, t0, time.UTC); err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
	}
	if n := len(s.RecentAuthorizations); n != MaxRecentAuthorizations || !strings.HasPrefix(s.RecentAuthorizations[0], "au-036#") ||
		!strings.HasPrefix(s.RecentAuthorizations[63], "au-099#") {
		t.Errorf("recent authorizations: %d, %s..%s", n, s.RecentAuthorizations[0], s.RecentAuthorizations[n-1])
	}
	if a, c := Current(s, cardsv1alpha1.SpendDaily, "USD", t0, time.UTC); a.String() != "1250" || c != 100 {
		t.Errorf("daily: %s x%d", a, c)
	}
	// An ID that scrolled out of the newest 64 is no longer recognized: the bound the API sets.
	if err := Add(s, nil, purchase(func(tx *Transaction) { tx.AuthorizationID = "au-000" }), t0, time.UTC); err != nil {
		t.Errorf("an old ID is remembered beyond the bound: %v", err)
	}

	// Windows: at most 32, and a current window is never dropped to make room (its limit would start over):
	// the ninth currency in four windows does not fit, and nothing changes.
	s = &cardsv1alpha1.CardSpend{}
	all := windowOrder
	currencies := []string{"EUR", "GBP", "JPY", "CHF", "SEK", "NOK", "DKK", "PLN", "USD"}
	for _, c := range currencies[:8] {
		if err := Add(s, all, purchase(withAmount("1", c), func(tx *Transaction) { tx.AuthorizationID = c }), t0, time.UTC); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
	}
	before := s.DeepCopy()
	if err := Add(s, all, purchase(withAmount("1", "USD"), func(tx *Transaction) { tx.AuthorizationID = "USD" }), t0, time.UTC); !errors.Is(err, ErrLedgerFull) {
		t.Errorf("ninth currency: %v, want ErrLedgerFull", err)
	}
	if !reflect.DeepEqual(s, before) || len(s.Windows) != MaxSpendWindows {
		t.Errorf("a full ledger changed: %d windows", len(s.Windows))
	}
	// Once the windows of a past day roll over there is room again.
	if err := Add(s, []cardsv1alpha1.SpendWindowKind{cardsv1alpha1.SpendDaily}, purchase(withAmount("1", "USD")), t0.Add(24*time.Hour), time.UTC); err != nil {
		t.Errorf("next day: %v", err)
	}

	// Nothing is added for a nil ledger or an unusable amount.
	if err := Add(nil, all, purchase(), t0, time.UTC); !errors.Is(err, ErrUnusable) {
		t.Errorf("nil ledger: %v", err)
	}
	s = &cardsv1alpha1.CardSpend{}
	if err := Add(s, all, purchase(withAmount("-1", "USD")), t0, time.UTC); !errors.Is(err, ErrUnusable) || len(s.Windows) != 0 || len(s.RecentAuthorizations) != 0 {
		t.Errorf("negative amount added: %v", err)
	}
	// A long ID is remembered by its hash, within the API's 128 characters.
	long := purchase(func(tx *Transaction) { tx.AuthorizationID = string(make([]byte, 300)) })
	if err := Add(s, nil, long, t0, time.UTC); err != nil {
		t.Fatal(err)
	}
	if len(s.RecentAuthorizations) != 1 || len(s.RecentAuthorizations[0]) > 128 || !errors.Is(Add(s, nil, long, t0, time.UTC), ErrCounted) {
		t.Errorf("long ID: %q", s.RecentAuthorizations)
	}
}

// TestLedgerAndRules runs authorizations through Evaluate and Add as the receiver does, across a Berlin midnight.
func TestRulesLedgerAndRules(t *testing.T) {
	rs := mustParse(t, `timeZone: Europe/Berlin
rules:
- name: daily-spend
  reason: SPEND_LIMIT_DAILY
  spend: {window: Daily, maxAmount: "100.00", currency: EUR, maxCount: 3}
`)
	card := Card{Spend: &cardsv1alpha1.CardSpend{}}
	now := at(t, "2026-03-29T22:00:00+02:00") // the short day of the spring DST change
	var got []string
	for i, amount := range []string{"60", "40", "0.01", "1", "1", "1", "1"} {
		if i == 3 {
			now = at(t, "2026-03-30T00:00:00+02:00") // midnight: a new day
		}
		tx := purchase(withAmount(amount, "EUR"), func(tx *Transaction) { tx.AuthorizationID = fmt.Sprint("au-", i) })
		d := rs.Evaluate(tx, card, now)
		if d.Outcome == approved {
			if err := Add(card.Spend, d.CountsToward, tx, now, rs.TimeZone); err != nil {
				t.Fatal(err)
			}
		}
		got = append(got, string(d.Outcome)+" "+d.Reason)
	}
	want := []string{"Approved ", "Approved ", "Declined SPEND_LIMIT_DAILY", "Approved ", "Approved ", "Approved ", "Declined SPEND_LIMIT_DAILY"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
