package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// arrivals is what one receiver (a destination or a CardEventSink) got: when the settled state of each
// transaction first arrived, and which cards arrived.
type arrivals struct {
	name string

	mu         sync.Mutex
	settled    map[string]time.Time // provider transaction ID -> first delivery of its Completed state
	cards      map[string]bool
	deliveries int
}

func newArrivals(name string) *arrivals {
	return &arrivals{name: name, settled: map[string]time.Time{}, cards: map[string]bool{}}
}

// object is the part of a delivered Card or CardTransaction the harness reads.
type object struct {
	Spec struct {
		ProviderCardID        string `json:"providerCardID"`
		ProviderTransactionID string `json:"providerTransactionID"`
	} `json:"spec"`
	Status struct {
		Phase string `json:"phase"`
	} `json:"status"`
}

// record notes a state of type typ ("card.updated", "transaction.updated") that arrived at at; data is the
// object as delivered.
func (a *arrivals) record(typ string, data []byte, at time.Time) error {
	var obj object
	if err := json.Unmarshal(data, &obj); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.deliveries++
	switch typ {
	case "transaction.updated":
		id := obj.Spec.ProviderTransactionID
		if _, seen := a.settled[id]; !seen && obj.Status.Phase == "Completed" {
			a.settled[id] = at
		}
	case "card.updated":
		a.cards[obj.Spec.ProviderCardID] = true
	}
	return nil
}

// settledAt is when transaction id's settled state first arrived.
func (a *arrivals) settledAt(id string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.settled[id]
	return at, ok
}

// counts are the distinct cards and settled transactions received so far.
func (a *arrivals) counts() (cards, settled int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.cards), len(a.settled)
}

// destination is a webhook receiver the manager delivers to (a WebhookEndpoint destination, or a
// CardEventSink's Standard Webhooks sink: the same envelope). It answers after delay.
type destination struct {
	*arrivals
	delay time.Duration
	srv   *httptest.Server
}

func newDestination(name string, delay time.Duration) *destination {
	d := &destination{arrivals: newArrivals(name), delay: delay}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	return d
}

// delivery is the Standard Webhooks body: {"type": ..., "timestamp": ..., "data": {...}}.
type delivery struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

func (d *destination) serve(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, _ := io.ReadAll(r.Body)
	var msg delivery
	err := json.Unmarshal(body, &msg)
	if err == nil {
		err = d.record(msg.Type, msg.Data, at)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	time.Sleep(d.delay)
	w.WriteHeader(http.StatusNoContent)
}
