// Package spool is the receiver's write-ahead log for verified events the API server cannot take right now
// (unreachable, timing out, overloaded). An event is appended — normalized, without card secrets, and
// without one-time codes — and fsynced before the provider is answered, then replayed when the API server is
// back. Replay is safe in any order because every write is idempotent and newer-wins.
//
// What the API server refuses for good (a namespace that is gone, a quota, a name another ID holds) is not
// retried: it goes to the dead-letter log beside the spool, where `cardplane spool` lists, shows and requeues
// it. An event that fails for a passing reason is retried behind the others, so one entry never holds up the
// rest; after MaxAge it is dead-lettered too. Nothing leaves the spool but to the API server or a dead letter.
//
// File format (spool.wal, deadletter.wal): the header "CPSPOOL2", then records of [4-byte magic][4-byte
// big-endian length][4-byte CRC-32C of the payload][JSON payload]. spool.offset holds how far replay has got.
// A torn record at the tail (a crash mid-append) ends the log; a corrupt record is skipped and counted, and
// reading resumes at the next magic, so damage costs only the records it touches. Files of the first format
// (no header, no magic) are converted when opened.
package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// ErrFull is returned when the spool has reached its size bound; the receiver then answers 5xx.
var ErrFull = errors.New("the spool is full")

// Entry is one spooled event, or the record of an authorization decision already answered.
type Entry struct {
	Endpoint types.NamespacedName `json:"endpoint"`
	Received time.Time            `json:"received"`
	Event    event.Event          `json:"event"`
	// Decision, when set, is the answer given to the authorization request Event carries: replay writes it to
	// the transaction.
	Decision *cardsv1alpha1.AuthorizationDecision `json:"decision,omitempty"`
	// Attempts counts the replays that failed for a passing reason.
	Attempts int `json:"attempts,omitempty"`
	// Dead letters only: their ID, when and why they were given up on.
	ID     string    `json:"id,omitempty"`
	DeadAt time.Time `json:"deadAt,omitempty"`
	Reason string    `json:"reason,omitempty"`
}

// Names of the files in a spool directory.
const (
	walFile        = "spool.wal"
	offsetFile     = "spool.offset"
	deadLetterFile = "deadletter.wal"
	// requeuePrefix names the files `cardplane spool requeue` leaves for the running replica to adopt.
	requeuePrefix = "requeue-"
)

// DefaultMaxAge is how long an entry is retried for a passing reason before it is dead-lettered.
const DefaultMaxAge = 24 * time.Hour

// Spool is safe for concurrent use.
type Spool struct {
	dir      string
	maxBytes int64

	mu       sync.Mutex
	wal      *logFile
	dead     *logFile
	offset   int64 // bytes of spool.wal already replayed
	pending  int   // records not yet replayed
	oldest   time.Time
	corrupt  int
	replayMu sync.Mutex // one replay at a time
}

// Open opens (or creates) the spool in dir, bounded to maxBytes, and counts what is pending from before.
func Open(dir string, maxBytes int64) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	wal, err := openLog(filepath.Join(dir, walFile))
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	dead, err := openLog(filepath.Join(dir, deadLetterFile))
	if err != nil {
		_ = wal.close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, maxBytes: maxBytes, wal: wal, dead: dead, offset: headerLen}
	if data, err := os.ReadFile(filepath.Join(dir, offsetFile)); err == nil {
		if off, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); err == nil && off >= headerLen && off <= wal.size {
			s.offset = off
		}
	}
	records, _, _ := wal.read(s.offset) // damage is counted when replay meets it
	s.pending = len(records)
	if len(records) > 0 {
		s.oldest = records[0].e.Received
	}
	return s, nil
}

// Close closes the files; pending entries stay for the next Open.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.wal.close(), s.dead.close())
}

// Append writes entries durably (fsync) or not at all.
func (s *Spool) Append(entries ...Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range entries {
		entries[i].Event.Challenge = nil // one-time codes are never written anywhere
	}
	if err := s.wal.append(entries, s.maxBytes); err != nil {
		return err
	}
	if s.pending == 0 && len(entries) > 0 {
		s.oldest = entries[0].Received
	}
	s.pending += len(entries)
	return nil
}

// DeadLetter keeps an entry the API server refuses for good, with the reason, in the dead-letter log.
func (s *Spool) DeadLetter(e Entry, reason string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deadLetter(e, reason, now)
}

func (s *Spool) deadLetter(e Entry, reason string, now time.Time) error {
	e.Event.Challenge = nil
	e.DeadAt, e.Reason = now.UTC(), reason
	e.ID = entryID(e)
	return s.dead.append([]Entry{e}, s.maxBytes)
}

// Depth is the number of entries waiting; Oldest is the receive time of the first of them.
func (s *Spool) Depth() (int, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending, s.oldest
}

// Corrupt counts records skipped because they were damaged.
func (s *Spool) Corrupt() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.corrupt
}

// DeadLetters is the number of dead letters held.
func (s *Spool) DeadLetters() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	records, _, _ := s.dead.read(headerLen)
	return len(records)
}
