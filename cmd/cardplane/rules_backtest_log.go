package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/decisionlog"
)

// readDecisionLog reads a decision log as the transactions and cards a backtest replays: one transaction per
// decision record about a known card (named by the decision ID when it had no transaction ID), and each card's
// labels and phase as its latest record saw them. Lines that are not decision records (other log lines, when
// the log was taken from the pod's output) are skipped.
func readDecisionLog(path string) ([]cardsv1alpha1.CardTransaction, map[string]*cardsv1alpha1.Card, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var txns []cardsv1alpha1.CardTransaction
	cards := map[string]*cardsv1alpha1.Card{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r decisionlog.Record
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.DecisionID == "" || r.Outcome == "" {
			continue
		}
		if r.Card == nil || r.Card.Name == "" || r.Input.Currency == "" {
			continue
		}
		tx := decisionTransaction(&r)
		if r.Reason == cardsv1alpha1.DecisionUnknownCard {
			tx.Status.Authorization = nil // no card to replay against: counted as without a decision
		}
		txns = append(txns, tx)
		key := r.Card.Namespace + "/" + r.Card.Name
		cards[key] = &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: r.Card.Namespace, Name: r.Card.Name, Labels: r.Card.Labels},
			Status: cardsv1alpha1.CardStatus{Phase: r.Card.Phase}}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(txns) == 0 {
		return nil, nil, fmt.Errorf("%s: no decision records", path)
	}
	return txns, cards, nil
}

// decisionTransaction is a decision record as the CardTransaction a backtest replays.
func decisionTransaction(r *decisionlog.Record) cardsv1alpha1.CardTransaction {
	id, name := r.Input.TransactionID, r.Input.TransactionID
	if id == "" {
		id, name = "decision-"+r.DecisionID, "decision-"+r.DecisionID
	}
	decided := metav1.NewTime(r.Time)
	tx := cardsv1alpha1.CardTransaction{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.Card.Namespace, Name: name},
		Spec: cardsv1alpha1.CardTransactionSpec{CardRef: cardsv1alpha1.LocalObjectReference{Name: r.Card.Name},
			Provider: cardsv1alpha1.Provider(r.Provider), ProviderTransactionID: id},
		Status: cardsv1alpha1.CardTransactionStatus{
			Amount:          &cardsv1alpha1.Money{Value: r.Input.Amount, Currency: strings.ToUpper(r.Input.Currency)},
			AuthorizationID: r.Input.AuthorizationID, Channel: r.Input.Channel, OccurredAt: &decided,
			Authorization: &cardsv1alpha1.AuthorizationDecision{RuleResult: r.RuleResult, RuleSetVersion: r.RuleSetVersion, DecidedAt: &decided},
		},
	}
	if r.Input.MCC != "" || r.Input.MerchantName != "" || r.Input.MerchantCountry != "" {
		tx.Status.Merchant = &cardsv1alpha1.Merchant{Name: r.Input.MerchantName, MCC: r.Input.MCC, Country: r.Input.MerchantCountry}
	}
	return tx
}
