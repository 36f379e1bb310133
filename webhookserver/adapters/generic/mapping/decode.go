package mapping

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/money"
	"github.com/cardplane/cardplane/internal/pan"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// Standard Webhooks headers the defaults of eventID and occurredAt come from.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
)

// Result is a decoded callback.
type Result struct {
	// EventType is what the eventType expression yielded.
	EventType string
	// Unknown is set when no rule lists EventType.
	Unknown bool
	// Events holds the one event of the matching rule; empty for Ignore and Unknown.
	Events []event.Event
}

// Decode evaluates the mapping against one callback. body is the parsed JSON with exact numbers
// (json.Number, as adapter.Decode leaves them; it is converted in place); headers maps lower-case names to
// their first values. Every error is the callback's fault (a Malformed answer) and names the failing field.
func (m *Mapping) Decode(body any, headers map[string]string) (*Result, error) {
	if headers == nil {
		headers = map[string]string{}
	}
	act := map[string]any{"body": celJSON(body), "headers": headers}
	v, err := m.eventType.eval(act)
	if err != nil {
		return nil, fmt.Errorf("eventType: %w", err)
	}
	typ, err := str("eventType", v)
	if err != nil {
		return nil, err
	}
	if typ == "" {
		return nil, errors.New("eventType: the expression yields an empty event type")
	}
	res := &Result{EventType: typ}
	r := m.byType[typ]
	if r == nil {
		res.Unknown = true
		return res, nil
	}
	if r.kind == KindIgnore {
		return res, nil
	}
	ev := event.Event{Type: typ, ID: strings.TrimSpace(headers[HeaderID])}
	if m.eventID != nil {
		if v, err = m.eventID.eval(act); err != nil {
			return nil, fmt.Errorf("%s: eventID: %w", typ, err)
		}
		if ev.ID, err = str("eventID", v); err != nil {
			return nil, fmt.Errorf("%s: %w", typ, err)
		}
	}
	if m.occurredAt != nil {
		if v, err = m.occurredAt.eval(act); err == nil {
			ev.OccurredAt, err = toTime("occurredAt", v)
		}
	} else if ts := strings.TrimSpace(headers[HeaderTimestamp]); ts != "" {
		ev.OccurredAt, err = parseTime(HeaderTimestamp, ts)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: occurredAt: %w", typ, err)
	}
	vals := make(map[string]any, len(r.fields))
	for _, name := range r.names {
		v, err := r.fields[name].eval(act)
		if err != nil {
			return nil, fmt.Errorf("%s: events[%d].fields.%s: %w", typ, r.index, name, err)
		}
		vals[name] = v
	}
	f := facts{typ: typ, vals: vals}
	if err := f.build(r.kind, &ev); err != nil {
		return nil, err
	}
	res.Events = []event.Event{ev}
	return res, nil
}

// parseTime reads what the API documents for occurredAt: epoch seconds or milliseconds (told apart by
// size, as adapter.Time does) or an RFC 3339 time.
func parseTime(name, s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return epoch(n), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %q is neither epoch seconds or milliseconds nor an RFC 3339 time", name, s)
	}
	return t.UTC(), nil
}

func epoch(n int64) time.Time {
	if n > 1e11 || n < -1e11 { // milliseconds (after 1973)
		return time.UnixMilli(n).UTC()
	}
	return time.Unix(n, 0).UTC()
}

// facts turns evaluated field values into the normalized model; the first error wins.
type facts struct {
	typ  string
	vals map[string]any
	err  error
}

func (f *facts) fail(format string, args ...any) {
	if f.err == nil {
		f.err = fmt.Errorf("%s: %s", f.typ, fmt.Sprintf(format, args...))
	}
}

func (f *facts) present(name string) bool { return f.vals[name] != nil }

func (f *facts) str(name string) string {
	s, err := str(name, f.vals[name])
	if err != nil {
		f.fail("%v", err)
	}
	return s
}

// id is an identifier: at most 128 characters, as the API stores them.
func (f *facts) id(name string) string {
	s := f.str(name)
	if len(s) > 128 {
		f.fail("%s is longer than 128 characters", name)
	}
	return s
}

// text is free text; a full card number in it is refused rather than stored.
func (f *facts) text(name string) string {
	s := f.str(name)
	if len(pan.Find(s)) > 0 {
		f.fail("%s contains what looks like a full card number; map bin/last4 instead", name)
		return ""
	}
	return s
}

func (f *facts) enum(name string) string {
	s := f.str(name)
	if s == "" {
		return ""
	}
	v, ok := enumValue(s, fields[name].enum)
	if !ok {
		f.fail("%s: %q is not one of %s", name, s, strings.Join(fields[name].enum, ", "))
	}
	return v
}

// phase reads a phase or KYC state field. A value that is not one is a provider status the mapping did not
// foresee: it becomes the neutral Unknown, kept verbatim as the provider status when the mapping sets none, instead
// of a 400 that the provider would retry until it gave up.
func (f *facts) phase(name, providerStatus string) (string, string) {
	s := f.str(name)
	if s == "" {
		return "", providerStatus
	}
	if v, ok := enumValue(s, fields[name].enum); ok {
		return v, providerStatus
	}
	return unknownPhase, cmp.Or(providerStatus, s)
}

func (f *facts) currency(name string) string {
	s := f.str(name)
	if s == "" {
		return ""
	}
	c, err := money.Currency(s)
	if err != nil {
		f.fail("%s: %v", name, err)
	}
	return c
}

// money reads name (major or minor units) in the currency field cur; nil when absent.
func (f *facts) money(name, cur string, minor bool) *cardsv1alpha1.Money {
	v := f.vals[name]
	if v == nil {
		return nil
	}
	s, err := amount(name, v, minor)
	if err != nil {
		f.fail("%v", err)
		return nil
	}
	c := f.currency(cur)
	if c == "" {
		f.fail("%s is set but %s is empty", name, cur)
		return nil
	}
	var m *cardsv1alpha1.Money
	if minor {
		m, err = money.Minor(s, c)
	} else {
		m, err = money.Major(s, c)
	}
	if err != nil {
		f.fail("%s: %v", name, err)
		return nil
	}
	return m
}

// either reads the major or the minor variant of an amount, whichever the rule maps.
func (f *facts) either(major, cur string) *cardsv1alpha1.Money {
	if f.present(major) {
		return f.money(major, cur, false)
	}
	return f.money(major+"Minor", cur, true)
}

func (f *facts) build(kind cardsv1alpha1.GenericEventKind, ev *event.Event) error {
	ev.CardID = f.id("cardID")
	ev.HolderID = f.id("holderID")
	card := f.card(kind == KindCardLifecycle)
	if b := f.either("balance", "currency"); b != nil {
		ev.Balance = &event.Balance{Available: *b}
	}
	switch kind {
	case KindCardLifecycle:
		ev.Card = card
		if ev.Card == nil {
			ev.Card = &event.Card{}
		}
	case KindBalance:
		ev.Card = card
		if ev.Balance == nil {
			f.fail("balance is empty")
		}
	case KindTransaction:
		ev.Card = card
		ev.Transaction = f.transaction()
	case KindKYC:
		ev.Card = card
		ev.KYC = &event.KYC{Reason: f.text("reason")}
		var state string
		state, ev.KYC.ProviderStatus = f.phase("kycState", "")
		ev.KYC.State = cardsv1alpha1.KYCState(state)
		if ev.KYC.State != cardsv1alpha1.KYCUnknown {
			ev.KYC.ProviderStatus = ""
		}
		if ev.KYC.State == "" {
			f.fail("kycState is empty")
		}
	case KindLogistics:
		ev.Card = card
		ev.Logistics = &event.Logistics{State: cardsv1alpha1.LogisticsState(f.enum("logisticsState")),
			Carrier: f.text("carrier"), TrackingNumber: f.id("trackingNumber")}
		if ev.Logistics.State == "" {
			f.fail("logisticsState is empty")
		}
	}
	// KYC is about the holder: a holder ID will do where the provider names no card.
	if ev.CardID == "" && (kind != KindKYC || ev.HolderID == "") {
		f.fail("cardID is empty")
	}
	return f.err
}

// card collects card facts: identity always, lifecycle (phase, status, reason) only for CardLifecycle rules.
// nil when there are none.
func (f *facts) card(lifecycle bool) *event.Card {
	c := &event.Card{Type: cardsv1alpha1.CardType(f.enum("cardType"))}
	if lifecycle {
		c.ProviderStatus = f.text("providerStatus")
		var phase string
		phase, c.ProviderStatus = f.phase("phase", c.ProviderStatus)
		c.Phase = cardsv1alpha1.CardPhase(phase)
		c.Reason = f.text("reason")
	}
	c.Number = f.number()
	if f.present("expiryMonth") || f.present("expiryYear") {
		c.Expiry = f.expiry()
	}
	if c.Type == "" && c.Phase == "" && c.ProviderStatus == "" && c.Reason == "" && c.Number == nil && c.Expiry == nil {
		return nil
	}
	return c
}

// number builds the masked number from bin and last4, reducing any full or masked card number at once.
func (f *facts) number() *cardsv1alpha1.MaskedNumber {
	var n cardsv1alpha1.MaskedNumber
	var fromLast4 *cardsv1alpha1.MaskedNumber
	if v := f.vals["last4"]; v != nil {
		s, digits := f.digits("last4", v, 4)
		switch {
		case len(s) == 4 && digits:
			n.Last4 = s
		default:
			if fromLast4 = pan.Reduce(s); fromLast4 == nil || fromLast4.Last4 == "" {
				f.fail("last4 yields no last four digits")
			} else {
				n.Last4 = fromLast4.Last4
			}
		}
	}
	if v := f.vals["bin"]; v != nil {
		s, digits := f.digits("bin", v, 0)
		switch {
		case digits && (len(s) == 6 || len(s) == 8):
			n.BIN = s
		default:
			r := pan.Reduce(s)
			if r == nil || r.BIN == "" {
				f.fail("bin yields no 6 or 8 digit BIN")
			} else {
				n.BIN = r.BIN
				if n.Last4 == "" {
					n.Last4 = r.Last4
				}
			}
		}
	}
	if n.BIN == "" && fromLast4 != nil {
		n.BIN = fromLast4.BIN
	}
	if n == (cardsv1alpha1.MaskedNumber{}) {
		return nil
	}
	return &n
}

// digits renders a bin/last4 result; integers are zero-padded to pad digits (a last4 of 0123 sent as 123).
func (f *facts) digits(name string, v any, pad int) (string, bool) {
	var s string
	switch x := v.(type) {
	case int64:
		if x < 0 {
			f.fail("%s is negative", name)
			return "", false
		}
		s = fmt.Sprintf("%0*d", pad, x)
	default:
		s = f.str(name)
	}
	return s, s != "" && strings.Trim(s, "0123456789") == ""
}

func (f *facts) expiry() *cardsv1alpha1.Expiry {
	if !f.present("expiryMonth") || !f.present("expiryYear") {
		f.fail("expiryMonth and expiryYear must both be set or both be empty")
		return nil
	}
	mon, err := integer("expiryMonth", f.vals["expiryMonth"])
	if err != nil {
		f.fail("%v", err)
		return nil
	}
	yr, err := integer("expiryYear", f.vals["expiryYear"])
	if err != nil {
		f.fail("%v", err)
		return nil
	}
	if yr >= 0 && yr < 100 {
		yr += 2000
	}
	if mon < 1 || mon > 12 {
		f.fail("expiryMonth %d is not 1 to 12", mon)
		return nil
	}
	if yr < 2000 || yr > 2200 {
		f.fail("expiryYear %d is not a four-digit year", yr)
		return nil
	}
	return &cardsv1alpha1.Expiry{Month: int32(mon), Year: int32(yr)}
}

func (f *facts) transaction() *event.Transaction {
	t := &event.Transaction{
		ID:                    f.id("transactionID"),
		Type:                  cardsv1alpha1.TransactionType(f.enum("transactionType")),
		ProviderStatus:        f.text("providerStatus"),
		Direction:             cardsv1alpha1.Direction(f.enum("direction")),
		Channel:               f.text("channel"),
		Description:           f.text("description"),
		FailureReason:         f.text("reason"),
		OriginalTransactionID: f.id("originalTransactionID"),
	}
	phase, status := f.phase("transactionPhase", t.ProviderStatus)
	t.Phase, t.ProviderStatus = cardsv1alpha1.TransactionPhase(phase), status
	if t.ID == "" {
		f.fail("transactionID is empty")
	}
	if a := f.either("amount", "currency"); a != nil {
		if t.Direction == "" && strings.HasPrefix(string(a.Value), "-") {
			t.Direction = cardsv1alpha1.Debit
		}
		t.Amount = money.Abs(a)
	}
	t.BillingAmount = money.Abs(f.money("billingAmount", "billingCurrency", false))
	t.Fee = money.Abs(f.either("fee", "currency"))
	name, mcc, country := f.text("merchantName"), f.mcc(), f.country()
	if name != "" || mcc != "" || country != "" {
		t.Merchant = &cardsv1alpha1.Merchant{Name: name, MCC: mcc, Country: country}
	}
	return t
}

// mcc is four digits; integers are zero-padded (0742 sent as 742).
func (f *facts) mcc() string {
	v := f.vals["mcc"]
	if v == nil {
		return ""
	}
	s, digits := f.digits("mcc", v, 4)
	if !digits || len(s) != 4 {
		f.fail("mcc %q is not a 4-digit merchant category code", s)
		return ""
	}
	return s
}

func (f *facts) country() string {
	s := strings.ToUpper(f.str("merchantCountry"))
	if s != "" && ((len(s) != 2 && len(s) != 3) || strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "") {
		f.fail("merchantCountry %q is not an ISO 3166 alpha-2 or alpha-3 code", s)
		return ""
	}
	return s
}

// celJSON turns exact JSON numbers into CEL-friendly values in place: integers that fit int64 as int64,
// anything else as the number's literal string, so no amount passes through a double.
func celJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = celJSON(e)
		}
	case []any:
		for i, e := range x {
			x[i] = celJSON(e)
		}
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return n
		}
		return string(x)
	}
	return v
}

// eval runs a program and converts its result to Go: nil (absent: null, "", optional.none()), string, int64,
// uint64, float64, bool or time.Time. Runtime errors (a missing key, a failed conversion, the cost limit)
// come back as errors.
func (p *program) eval(act any) (any, error) {
	out, _, err := p.prg.Eval(act)
	if err != nil {
		return nil, err
	}
	return goValue(out)
}

func goValue(v ref.Val) (any, error) {
	switch x := v.(type) {
	case types.String:
		if s := strings.TrimSpace(string(x)); s != "" {
			return s, nil
		}
		return nil, nil
	case types.Int:
		return int64(x), nil
	case types.Uint:
		return uint64(x), nil
	case types.Double:
		return float64(x), nil
	case types.Bool:
		return bool(x), nil
	case types.Null:
		return nil, nil
	case types.Timestamp:
		return x.Time, nil
	case *types.Optional:
		if !x.HasValue() {
			return nil, nil
		}
		return goValue(x.GetValue())
	case nil:
		return nil, errors.New("no result")
	}
	return nil, fmt.Errorf("yields a %s", v.Type().TypeName())
}

// str reads a result as a string; integers are spelled in decimal (IDs are often numbers).
func str(name string, v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return "", fmt.Errorf("%s yields a double (%v), want a string", name, x)
	}
	return "", fmt.Errorf("%s yields %s, want a string", name, describe(v))
}

// amount reads a money result as an exact decimal string; doubles are refused so no amount ever passes
// through a float (JSON decimals reach CEL as strings for the same reason).
func amount(name string, v any, minor bool) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return "", fmt.Errorf("%s yields a double (%v); amounts must be decimal strings or integers, never doubles", name, x)
	}
	if minor {
		return "", fmt.Errorf("%s yields %s, want an integer in minor units", name, describe(v))
	}
	return "", fmt.Errorf("%s yields %s, want a decimal string or an integer in major units", name, describe(v))
}

func integer(name string, v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case uint64:
		if x <= 1<<62 {
			return int64(x), nil
		}
	case string:
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return n, nil
		}
		return 0, fmt.Errorf("%s yields %q, want an integer", name, x)
	}
	return 0, fmt.Errorf("%s yields %s, want an integer", name, describe(v))
}

func toTime(name string, v any) (time.Time, error) {
	switch x := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return x.UTC(), nil
	case int64:
		return epoch(x), nil
	case uint64:
		if x > 1<<62 {
			return time.Time{}, fmt.Errorf("%s: %d is out of range", name, x)
		}
		return epoch(int64(x)), nil
	case string:
		return parseTime(name, x)
	}
	return time.Time{}, fmt.Errorf("%s yields %s, want %s", name, describe(v), wantOf(fieldSpec{vt: vtTime}))
}

func describe(v any) string {
	switch x := v.(type) {
	case bool:
		return "a bool"
	case time.Time:
		return "a timestamp"
	case float64:
		return fmt.Sprintf("a double (%v)", x)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}
