package ingest

import (
	"cmp"
	"fmt"
	"regexp"
	"strings"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/pan"
	"github.com/cardplane/cardplane/internal/text"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// Fit makes an event's values fit the API schema before anything is written, so a verified callback is never
// refused by the API server (which the provider would see as an endless 5xx). Free text is shortened; values
// that cannot be stored faithfully (an ID too long to be an identity, an amount beyond the decimal schema)
// are errors the receiver answers 400.
func Fit(ev *event.Event) error {
	if len(ev.CardID) > 128 {
		return fmt.Errorf("card ID is longer than 128 characters")
	}
	ev.HolderID = text.Clip(ev.HolderID, 128)
	ev.ID = text.Clip(ev.ID, 128)
	ev.Type = text.Clip(ev.Type, 64)
	if c := ev.Card; c != nil {
		c.ProviderStatus = clip(c.ProviderStatus, 64)
		c.Reason = clip(c.Reason, 512)
		for k, m := range c.Amounts {
			if err := checkMoney("card amount "+k, &m); err != nil {
				return err
			}
		}
	}
	if f := ev.Failure; f != nil {
		f.Kind, f.ProviderStatus = cmp.Or(text.Clip(f.Kind, 64), text.Clip(ev.Type, 64)), clip(f.ProviderStatus, 64)
		f.Reason, f.Reference = clip(f.Reason, 512), text.Clip(f.Reference, 128)
	}
	if r := ev.Risk; r != nil {
		r.Action, r.Reason = clip(r.Action, 64), clip(r.Reason, 512)
	}
	if b := ev.Balance; b != nil {
		if err := checkMoney("balance", &b.Available); err != nil {
			return err
		}
	}
	if k := ev.KYC; k != nil {
		k.Reason = clip(k.Reason, 512)
	}
	if l := ev.Logistics; l != nil {
		l.Carrier, l.TrackingNumber = clip(l.Carrier, 128), text.Clip(l.TrackingNumber, 128)
	}
	if err := fitAuthorization(ev.Authorization); err != nil {
		return err
	}
	return fitTransaction(ev.Transaction)
}

func fitAuthorization(a *event.AuthorizationRequest) error {
	if a == nil {
		return nil
	}
	if len(a.TransactionID) > 128 {
		return fmt.Errorf("transaction ID is longer than 128 characters")
	}
	if err := checkMoney("amount", &a.Amount); err != nil {
		return err
	}
	a.AuthorizationID, a.Channel = text.Clip(a.AuthorizationID, 128), clip(a.Channel, 32)
	fitMerchant(a.Merchant)
	return nil
}

func fitTransaction(t *event.Transaction) error {
	if t == nil {
		return nil
	}
	if len(t.ID) > 128 {
		return fmt.Errorf("transaction ID is longer than 128 characters")
	}
	for name, m := range map[string]*cardsv1alpha1.Money{"amount": t.Amount, "billing amount": t.BillingAmount, "fee": t.Fee} {
		if err := checkMoney(name, m); err != nil {
			return err
		}
	}
	for _, f := range t.Fees {
		if err := checkMoney("fee "+f.Name, &f.Amount); err != nil {
			return err
		}
	}
	if r := t.ExchangeRate; r != "" && !decimalPattern.MatchString(string(r)) {
		return fmt.Errorf("exchange rate %q does not fit an 18.18-digit decimal", r)
	}
	if len(t.Fees) > 16 {
		t.Fees = t.Fees[:16]
	}
	t.ProviderStatus, t.Channel = clip(t.ProviderStatus, 64), clip(t.Channel, 32)
	t.Description, t.FailureReason = clip(t.Description, 512), clip(t.FailureReason, 512)
	t.OriginalTransactionID, t.AuthorizationID = text.Clip(t.OriginalTransactionID, 128), text.Clip(t.AuthorizationID, 128)
	fitMerchant(t.Merchant)
	return fitCrypto(t.Crypto)
}

func fitCrypto(c *cardsv1alpha1.CryptoPayment) error {
	if c == nil {
		return nil
	}
	c.Asset = strings.ToUpper(c.Asset)
	if !assetPattern.MatchString(c.Asset) {
		return fmt.Errorf("crypto asset %q is not 2-12 letters or digits", c.Asset)
	}
	for name, d := range map[string]cardsv1alpha1.Decimal{"crypto amount": c.Amount, "crypto fee": c.Fee} {
		if d != "" && !decimalPattern.MatchString(string(d)) {
			return fmt.Errorf("%s %q does not fit an 18.18-digit decimal", name, d)
		}
	}
	c.Network = text.Clip(c.Network, 64)
	return nil
}

var (
	decimalPattern  = regexp.MustCompile(`^-?[0-9]{1,18}(\.[0-9]{1,18})?$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
	mccPattern      = regexp.MustCompile(`^[0-9]{4}$`)
	countryPattern  = regexp.MustCompile(`^[A-Z]{2,3}$`)
	assetPattern    = regexp.MustCompile(`^[A-Z0-9]{2,12}$`)
)

func checkMoney(name string, m *cardsv1alpha1.Money) error {
	if m == nil {
		return nil
	}
	if !decimalPattern.MatchString(string(m.Value)) {
		return fmt.Errorf("%s %q does not fit an 18.18-digit decimal", name, m.Value)
	}
	if !currencyPattern.MatchString(m.Currency) {
		return fmt.Errorf("%s currency %q is not an ISO 4217 code", name, m.Currency)
	}
	return nil
}

// fitMerchant keeps only merchant codes the schema accepts: an MCC or country in another shape is dropped
// (and the name kept) rather than refusing the transaction.
func fitMerchant(m *cardsv1alpha1.Merchant) {
	if m == nil {
		return
	}
	m.Name, m.ID = clip(m.Name, 256), text.Clip(m.ID, 64)
	if !mccPattern.MatchString(m.MCC) {
		m.MCC = ""
	}
	m.Country = strings.ToUpper(m.Country)
	if !countryPattern.MatchString(m.Country) {
		m.Country = ""
	}
}

// clip bounds provider free text (reasons, descriptions, names) for the API and removes any full card number
// typed into it: every adapter's events pass through here, so no adapter has to remember to. Identifiers are
// only bounded (text.Clip): long numeric IDs can look like card numbers.
func clip(s string, n int) string { return pan.Clean(s, n) }
