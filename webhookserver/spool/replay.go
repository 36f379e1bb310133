package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Disposition is what became of an entry in a replay.
type Disposition int

// Dispositions of an entry in a replay.
const (
	// Applied: the API server took it.
	Applied Disposition = iota
	// Later: it failed for a passing reason (the API server down, slow, a conflict): retried behind the others.
	Later
	// Refused: the API server refuses it for good: it becomes a dead letter with the reason.
	Refused
)

// Stats count what one replay did.
type Stats struct {
	Applied, Retried, DeadLettered, Requeued int
	// LastError is the last failure, for the log.
	LastError error
}

// outageRun is how many entries in a row must fail for a passing reason before a replay stops: the API server
// is down, and trying the rest now only churns the file. Fewer failures are retried behind the others.
const outageRun = 3

// compactAfter is how many replayed bytes at the head of the file make a replay rewrite the rest into a new
// file, so retried entries do not grow it without bound. A variable for the tests.
var compactAfter int64 = 4 << 20

// Replay applies pending entries. An entry refused for good, or failing for a passing reason for longer than
// maxAge, becomes a dead letter (dead is told, for an Event and a metric); one that fails for a passing reason
// is moved behind the others, so it never holds them up. Requeued dead letters (`cardplane spool requeue`) are
// adopted first. When everything is applied the file is emptied.
func (s *Spool) Replay(apply func(Entry) (Disposition, error), maxAge time.Duration, now time.Time, dead func(Entry)) (Stats, error) {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	var st Stats
	var err error
	if st.Requeued, err = s.adoptRequeued(); err != nil {
		return st, err
	}
	s.mu.Lock()
	offset := s.offset
	records, _, corrupt := s.wal.read(offset)
	s.corrupt += corrupt
	s.mu.Unlock()

	var retry, run []record
	for _, rec := range records {
		d, err := apply(rec.e)
		if err != nil {
			st.LastError = err
		}
		if d == Later && now.Sub(rec.e.Received) > maxAge {
			d, err = Refused, fmt.Errorf("failed for longer than %s: %w", maxAge, err)
		}
		if d == Later {
			if run = append(run, rec); len(run) >= outageRun {
				break // the API server is down: the rest waits, in place
			}
			continue
		}
		if d == Refused {
			if derr := s.DeadLetter(rec.e, reason(err), now); derr != nil {
				return st, derr // kept in the spool: tried again next time
			}
			st.DeadLettered++
			if dead != nil {
				dead(rec.e)
			}
		} else {
			st.Applied++
		}
		retry, run = append(retry, run...), nil // the failures before a success go behind the others
		offset = rec.end
	}
	st.Retried = len(retry)
	return st, s.advance(offset, retry)
}

func reason(err error) string {
	if err == nil {
		return "refused"
	}
	msg := err.Error()
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	return msg
}

// advance records that the spool was replayed up to offset, appends the entries to retry behind the others,
// and empties or compacts the file.
func (s *Spool) advance(offset int64, retry []record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	again := make([]Entry, 0, len(retry))
	for _, r := range retry {
		r.e.Attempts++
		again = append(again, r.e)
	}
	if len(again) > 0 {
		if err := s.wal.append(again, s.maxBytes+int64(len(again))*maxRecord); err != nil {
			return err // nothing advanced: every entry is still pending
		}
	}
	rest, _, _ := s.wal.read(offset)
	s.pending = len(rest)
	if len(rest) > 0 {
		s.oldest = rest[0].e.Received
	}
	s.offset = offset
	switch {
	case s.offset >= s.wal.size:
		if err := s.wal.reset(); err != nil {
			return err
		}
		s.offset, s.pending = headerLen, 0
	case s.offset-headerLen > compactAfter:
		if err := s.compact(); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(s.dir, offsetFile), []byte(strconv.FormatInt(s.offset, 10)), 0o600)
}

// compact rewrites the pending entries into a new file (through a rename: a crash leaves one or the other).
func (s *Spool) compact() error {
	rest, _, _ := s.wal.read(s.offset)
	tmp, err := os.CreateTemp(s.dir, "compact-*")
	if err != nil {
		return err
	}
	nl := &logFile{f: tmp}
	entries := make([]Entry, 0, len(rest))
	for _, r := range rest {
		entries = append(entries, r.e)
	}
	if err = nl.reset(); err == nil {
		err = nl.append(entries, 1<<62)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(s.dir, walFile))
	}
	if err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return err
	}
	_ = s.wal.close()
	s.wal, s.offset = nl, headerLen
	return nil
}

// adoptRequeued takes the dead letters `cardplane spool requeue` asked for back into the spool and drops them
// from the dead-letter log. Only the running replica writes its files; the command leaves a request file.
func (s *Spool) adoptRequeued() (int, error) {
	files, _ := filepath.Glob(filepath.Join(s.dir, requeuePrefix+"*"))
	adopted := 0
	for _, f := range files {
		ids, err := readRequeue(f)
		if err != nil {
			return adopted, err
		}
		n, err := s.requeue(ids)
		if err != nil {
			return adopted, err
		}
		adopted += n
		if err := os.Remove(f); err != nil {
			return adopted, err
		}
	}
	return adopted, nil
}

// requeue moves the dead letters with these IDs (all when ids holds "*") back into the spool.
func (s *Spool) requeue(ids []string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	records, _, _ := s.dead.read(headerLen)
	var back, keep []Entry
	for _, r := range records {
		if slices.Contains(ids, "*") || slices.Contains(ids, r.e.ID) {
			e := r.e
			e.ID, e.DeadAt, e.Reason, e.Attempts = "", time.Time{}, "", 0
			back = append(back, e)
		} else {
			keep = append(keep, r.e)
		}
	}
	if len(back) == 0 {
		return 0, nil
	}
	if err := s.wal.append(back, 1<<62); err != nil {
		return 0, err
	}
	s.pending += len(back)
	// Rewrite the dead letters that stay; a crash in between leaves a requeued one in both (replay is
	// idempotent, and the command can be run again).
	if err := s.dead.reset(); err != nil {
		return len(back), err
	}
	return len(back), s.dead.append(keep, 1<<62)
}

func readRequeue(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			ids = append(ids, l)
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("spool: an empty requeue request " + path)
	}
	return ids, nil
}
