package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// destination is a webhook receiver the manager delivers to. It answers after delay and remembers when the
// settled state of each transaction first arrived, and which cards arrived.
type destination struct {
	name  string
	delay time.Duration
	srv   *httptest.Server

	mu         sync.Mutex
	settled    map[string]time.Time // provider transaction ID -> first delivery of its Completed state
	cards      map[string]bool
	deliveries int
}

func newDestination(name string, delay time.Duration) *destination {
	d := &destination{name: name, delay: delay, settled: map[string]time.Time{}, cards: map[string]bool{}}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	return d
}

// delivery is the part of a Standard Webhooks delivery the harness reads.
type delivery struct {
	Type string `json:"type"`
	Data struct {
		Spec struct {
			ProviderCardID        string `json:"providerCardID"`
			ProviderTransactionID string `json:"providerTransactionID"`
		} `json:"spec"`
		Status struct {
			Phase string `json:"phase"`
		} `json:"status"`
	} `json:"data"`
}

func (d *destination) serve(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, _ := io.ReadAll(r.Body)
	var msg delivery
	if err := json.Unmarshal(body, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	d.deliveries++
	switch msg.Type {
	case "transaction.updated":
		id := msg.Data.Spec.ProviderTransactionID
		if _, seen := d.settled[id]; !seen && msg.Data.Status.Phase == "Completed" {
			d.settled[id] = at
		}
	case "card.updated":
		d.cards[msg.Data.Spec.ProviderCardID] = true
	}
	d.mu.Unlock()
	time.Sleep(d.delay)
	w.WriteHeader(http.StatusNoContent)
}

// settledAt is when transaction id's settled state first arrived.
func (d *destination) settledAt(id string) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	at, ok := d.settled[id]
	return at, ok
}

// counts are the distinct cards and settled transactions received so far.
func (d *destination) counts() (cards, settled int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.cards), len(d.settled)
}
