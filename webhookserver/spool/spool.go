// Package spool is the receiver's write-ahead log for verified events the API server cannot take right now
// (unreachable, timing out, overloaded). An event is appended — normalized, without card secrets, and
// without one-time codes — and fsynced before the provider is answered, then replayed in arrival order when
// the API server is back. Replay is safe because every write is idempotent and newer-wins.
//
// File format: records of [4-byte big-endian length][4-byte CRC-32C of the payload][JSON payload], appended to
// spool.wal; spool.offset holds how far replay has applied. A torn record at the tail (a crash mid-append) ends
// the log; a record whose checksum does not match is skipped and counted.
package spool

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
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
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Spool is safe for concurrent use.
type Spool struct {
	dir      string
	maxBytes int64

	mu       sync.Mutex
	f        *os.File
	size     int64 // bytes in spool.wal
	offset   int64 // bytes already replayed
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
	f, err := os.OpenFile(filepath.Join(dir, "spool.wal"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, maxBytes: maxBytes, f: f}
	if data, err := os.ReadFile(filepath.Join(dir, "spool.offset")); err == nil {
		s.offset, _ = strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	}
	entries, end, _ := s.read(s.offset) // corrupt records are counted when replay meets them
	// Cut a torn tail so new records follow the last whole one.
	if err := f.Truncate(end); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	s.size, s.pending = end, len(entries)
	if len(entries) > 0 {
		s.oldest = entries[0].e.Received
	}
	return s, nil
}

// Close closes the file; pending entries stay for the next Open.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Close()
}

// Append writes entries durably (fsync) or not at all.
func (s *Spool) Append(entries ...Entry) error {
	var buf []byte
	for _, e := range entries {
		e.Event.Challenge = nil // one-time codes are never written anywhere
		payload, err := json.Marshal(e)
		if err != nil {
			return err
		}
		var head [8]byte
		binary.BigEndian.PutUint32(head[0:4], uint32(len(payload)))
		binary.BigEndian.PutUint32(head[4:8], crc32.Checksum(payload, castagnoli))
		buf = append(append(buf, head[:]...), payload...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.size+int64(len(buf)) > s.maxBytes {
		return ErrFull
	}
	if _, err := s.f.WriteAt(buf, s.size); err != nil {
		_ = s.f.Truncate(s.size)
		return fmt.Errorf("spool: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		_ = s.f.Truncate(s.size)
		return fmt.Errorf("spool: %w", err)
	}
	if s.pending == 0 && len(entries) > 0 {
		s.oldest = entries[0].Received
	}
	s.size += int64(len(buf))
	s.pending += len(entries)
	return nil
}

// Depth is the number of entries waiting; Oldest is the receive time of the first of them.
func (s *Spool) Depth() (int, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending, s.oldest
}

// Corrupt counts records skipped because their checksum did not match.
func (s *Spool) Corrupt() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.corrupt
}

type record struct {
	e   Entry
	end int64 // offset just after the record
}

// read returns the whole records from offset on, where the last one ends, and how many were corrupt.
func (s *Spool) read(offset int64) ([]record, int64, int) {
	r := bufio.NewReader(io.NewSectionReader(s.f, offset, 1<<62))
	var out []record
	pos, corrupt := offset, 0
	for {
		var head [8]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return out, pos, corrupt // end, or a torn header
		}
		n := int64(binary.BigEndian.Uint32(head[0:4]))
		if n > s.maxBytes {
			return out, pos, corrupt // garbage length: treat as the end of the log
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return out, pos, corrupt // torn payload
		}
		pos += 8 + n
		var e Entry
		if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(head[4:8]) || json.Unmarshal(payload, &e) != nil {
			corrupt++
			continue
		}
		out = append(out, record{e: e, end: pos})
	}
}

// Replay applies pending entries in arrival order and stops at the first that fails (it is tried again next
// time). It returns how many were applied. When everything is applied the files are emptied.
func (s *Spool) Replay(apply func(Entry) error) (int, error) {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	s.mu.Lock()
	offset := s.offset
	s.mu.Unlock()
	records, _, corrupt := s.read(offset)
	applied := 0
	var applyErr error
	for _, rec := range records {
		if applyErr = apply(rec.e); applyErr != nil {
			break
		}
		applied++
		offset = rec.end
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt += corrupt
	s.offset = offset
	s.pending -= applied
	if s.pending < 0 {
		s.pending = 0
	}
	if applied > 0 && applied < len(records) {
		s.oldest = records[applied].e.Received
	}
	if s.offset >= s.size {
		// All applied: start over with empty files.
		if err := s.f.Truncate(0); err == nil {
			s.size, s.offset, s.pending = 0, 0, 0
		}
	}
	if err := os.WriteFile(filepath.Join(s.dir, "spool.offset"), []byte(strconv.FormatInt(s.offset, 10)), 0o600); err != nil {
		return applied, err
	}
	return applied, applyErr
}
