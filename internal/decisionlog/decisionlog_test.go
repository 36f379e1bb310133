package decisionlog

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/testenv"
)

func TestEveryRecordIsOneLineAndReadsBack(t *testing.T) {
	out := &testenv.LogBuffer{}
	l := New(out, 16)
	ctx, stop := context.WithCancel(context.Background())
	go func() { _ = l.Start(ctx) }()
	before := testutil.ToFloat64(written)
	l.Log(Record{Source: SourceReview, Input: Input{Amount: "12.50", Currency: "USD"},
		RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionDeclined, Reason: cardsv1alpha1.DecisionUnknownCard}})
	l.Log(Record{Source: SourceCallback, Endpoint: "payments/upay", Card: &Card{Namespace: "payments", Name: "upay-c1"},
		Input:      Input{TransactionID: "T-1", Amount: "3.00", Currency: "EUR", MCC: "5411"},
		RuleResult: cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionApproved}, RuleSetRevision: "9f2c1e7"})
	stop()
	<-l.Done()
	recs, err := Read(bytes.NewReader([]byte(out.String())))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || bytes.Count([]byte(out.String()), []byte("\n")) != 2 {
		t.Fatalf("got %d records in %q, want 2 lines", len(recs), out.String())
	}
	if recs[0].DecisionID == "" || recs[0].DecisionID == recs[1].DecisionID || recs[0].Time.IsZero() || recs[0].Time.Location() != time.UTC {
		t.Errorf("records need distinct IDs and a UTC time: %+v", recs)
	}
	if r := recs[1]; r.Card.Name != "upay-c1" || r.Input.MCC != "5411" || r.Outcome != cardsv1alpha1.DecisionApproved || r.RuleSetRevision != "9f2c1e7" {
		t.Errorf("second record = %+v", r)
	}
	if got := testutil.ToFloat64(written) - before; got != 2 {
		t.Errorf("records counted written = %v, want 2", got)
	}
}

// blockingWriter holds every write until released: a stuck disk or a blocked pipe.
type blockingWriter struct{ release chan struct{} }

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	return len(p), nil
}

// A stalled output never holds a decision up: once the buffer is full, records are dropped and counted.
func TestAFullBufferIsCountedNotBlocked(t *testing.T) {
	out := &blockingWriter{release: make(chan struct{})}
	l := New(out, 2)
	ctx, stop := context.WithCancel(context.Background())
	go func() { _ = l.Start(ctx) }()
	before := testutil.ToFloat64(dropped)
	accepted := 0
	for i := 0; i < 10; i++ {
		if l.Log(Record{Source: SourceReview}) {
			accepted++
		}
	}
	// The writer holds one record in its stuck write and the buffer two, at most: at least 7 of 10 dropped.
	if accepted > 3 || accepted < 2 {
		t.Errorf("accepted %d of 10 records with a stuck output and a buffer of 2", accepted)
	}
	if got := testutil.ToFloat64(dropped) - before; got != float64(10-accepted) {
		t.Errorf("dropped counter moved by %v, want %d", got, 10-accepted)
	}
	close(out.release)
	stop()
	<-l.Done()
	if l.Log(Record{Source: SourceReview}) {
		t.Error("a record was accepted after the writer stopped: nothing would ever write it")
	}
}
