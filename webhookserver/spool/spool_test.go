package spool

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/cardplane/cardplane/webhookserver/event"
)

var t0 = time.Unix(1000, 0).UTC()

func entry(i int) Entry {
	return Entry{Endpoint: types.NamespacedName{Namespace: "ns", Name: "upay"}, Received: t0.Add(time.Duration(i) * time.Second),
		Event: event.Event{Type: "CSC_STATUS_CHANGE", ID: fmt.Sprint("o-", i), CardID: "C1",
			Challenge: &event.Challenge{Code: "739164"}}}
}

func open(t *testing.T, dir string) *Spool {
	t.Helper()
	s, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func appendN(t *testing.T, s *Spool, n int) {
	t.Helper()
	for i := range n {
		if err := s.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// all applies every entry and records its ID.
func all(got *[]string) func(Entry) (Disposition, error) {
	return func(e Entry) (Disposition, error) { *got = append(*got, e.Event.ID); return Applied, nil }
}

func TestAppendReplayAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	appendN(t, s, 5)
	data, _ := os.ReadFile(filepath.Join(dir, walFile))
	if bytes.Contains(data, []byte("739164")) {
		t.Fatal("a one-time code was written to the spool")
	}
	// The API server goes down after two: the replay stops (outage), the rest stays, also after a restart.
	var got []string
	st, err := s.Replay(func(e Entry) (Disposition, error) {
		if len(got) == 2 {
			return Later, errors.New("API server unavailable")
		}
		got = append(got, e.Event.ID)
		return Applied, nil
	}, DefaultMaxAge, t0, nil)
	if err != nil || st.Applied != 2 || st.Retried != 0 {
		t.Fatalf("replay: %+v %v", st, err)
	}
	_ = s.Close()
	s = open(t, dir)
	if depth, oldest := s.Depth(); depth != 3 || !oldest.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("after reopen: depth %d oldest %s, want 3 and the third entry's time", depth, oldest)
	}
	if _, err := s.Replay(all(&got), DefaultMaxAge, t0, nil); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[o-0 o-1 o-2 o-3 o-4]" {
		t.Errorf("replayed %v", got)
	}
	if depth, _ := s.Depth(); depth != 0 {
		t.Errorf("depth %d after a full replay", depth)
	}
	if fi, _ := os.Stat(filepath.Join(dir, walFile)); fi.Size() != headerLen {
		t.Errorf("spool file not emptied: %d bytes", fi.Size())
	}
}

// TestAPoisonedEntryBlocksNothing: an entry the API server refuses for good is dead-lettered (not dropped)
// and the 100 behind it are applied; an entry that keeps failing for a passing reason is retried behind the
// others. (Before, replay stopped at the first failing entry, for ever.)
func TestAPoisonedEntryBlocksNothing(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	appendN(t, s, 102)
	applied := map[string]int{}
	var told []string
	apply := func(e Entry) (Disposition, error) {
		switch e.Event.ID {
		case "o-0":
			return Refused, errors.New(`namespaces "gone" not found`)
		case "o-1":
			return Later, errors.New("the object has been modified")
		}
		applied[e.Event.ID]++
		return Applied, nil
	}
	st, err := s.Replay(apply, DefaultMaxAge, t0, func(e Entry) { told = append(told, e.Event.ID) })
	if err != nil || st.Applied != 100 || st.DeadLettered != 1 || st.Retried != 1 {
		t.Fatalf("replay: %+v %v, want 100 applied, 1 dead-lettered, 1 retried", st, err)
	}
	if len(applied) != 100 || !slices.Equal(told, []string{"o-0"}) {
		t.Errorf("applied %d, told of dead letters %v", len(applied), told)
	}
	if depth, _ := s.Depth(); depth != 1 || s.DeadLetters() != 1 {
		t.Errorf("depth %d, dead letters %d; want the retried one pending and one dead letter", depth, s.DeadLetters())
	}
	// A passing failure that lasts past maxAge is dead-lettered too: never retried for ever, never dropped.
	st, _ = s.Replay(apply, time.Hour, t0.Add(2*time.Hour), nil)
	if st.DeadLettered != 1 || s.DeadLetters() != 2 {
		t.Errorf("after maxAge: %+v, %d dead letters", st, s.DeadLetters())
	}
	c, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.DeadLetters) != 2 || c.DeadLetters[0].Reason == "" || c.DeadLetters[0].ID == "" || c.DeadLetters[1].Attempts != 1 {
		t.Errorf("dead letters %+v", c.DeadLetters)
	}
}

// TestRequeue: dead letters come back into the spool when `cardplane spool requeue` asks.
func TestRequeue(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	for i := range 3 {
		if err := s.DeadLetter(entry(i), "quota exceeded", t0); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := Inspect(dir)
	if _, err := RequestRequeue(dir, []string{c.DeadLetters[1].ID}, t0); err != nil {
		t.Fatal(err)
	}
	var got []string
	st, err := s.Replay(all(&got), DefaultMaxAge, t0, nil)
	if err != nil || st.Requeued != 1 || fmt.Sprint(got) != "[o-1]" || s.DeadLetters() != 2 {
		t.Fatalf("requeue one: %+v %v, replayed %v, %d dead letters left", st, err, got, s.DeadLetters())
	}
	if _, err := RequestRequeue(dir, []string{"*"}, t0); err != nil {
		t.Fatal(err)
	}
	got = nil
	if st, _ := s.Replay(all(&got), DefaultMaxAge, t0, nil); st.Requeued != 2 || s.DeadLetters() != 0 {
		t.Errorf("requeue all: %+v, %d left", st, s.DeadLetters())
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, requeuePrefix+"*")); len(leftovers) != 0 {
		t.Errorf("request files left: %v", leftovers)
	}
}

// TestDamageCostsOnlyTheRecordsItTouches: a corrupt length field in the middle loses that record only; the
// ones after it are read. (Before, every record after it was dropped.) A torn tail is cut.
func TestDamageCostsOnlyTheRecordsItTouches(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	appendN(t, s, 5)
	_ = s.Close()
	path := filepath.Join(dir, walFile)
	data, _ := os.ReadFile(path)
	second := headerLen + int64(len(mustEncode(t, entry(0))))
	binary.BigEndian.PutUint32(data[second+4:], 0xFFFFFF) // the second record's length
	data[len(data)-5] ^= 0xff                             // the last record's payload
	data = append(data, recordMagic...)                   // a torn append at the tail
	data = append(data, 0, 0)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	var got []string
	_, _ = s.Replay(all(&got), DefaultMaxAge, t0, nil)
	if fmt.Sprint(got) != "[o-0 o-2 o-3]" || s.Corrupt() != 2 {
		t.Errorf("replayed %v with %d damaged places, want [o-0 o-2 o-3] and 2", got, s.Corrupt())
	}
	if err := s.Append(entry(9)); err != nil {
		t.Fatal(err)
	}
	got = nil
	_, _ = s.Replay(all(&got), DefaultMaxAge, t0, nil)
	if fmt.Sprint(got) != "[o-9]" {
		t.Errorf("after the torn tail was cut, replayed %v", got)
	}
}

func mustEncode(t *testing.T, e Entry) []byte {
	t.Helper()
	e.Event.Challenge = nil
	b, err := encode(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestALegacySpoolIsConverted: a spool written by the previous version (no header, no magic) is converted
// when opened, and every entry in it replayed.
func TestALegacySpoolIsConverted(t *testing.T) {
	dir := t.TempDir()
	var legacy []byte
	for i := range 3 {
		e := entry(i)
		e.Event.Challenge = nil
		payload, _ := json.Marshal(e)
		var head [8]byte
		binary.BigEndian.PutUint32(head[0:4], uint32(len(payload)))
		binary.BigEndian.PutUint32(head[4:8], crc32.Checksum(payload, castagnoli))
		legacy = append(append(legacy, head[:]...), payload...)
	}
	if err := os.WriteFile(filepath.Join(dir, walFile), legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, offsetFile), []byte("0"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir)
	var got []string
	_, _ = s.Replay(all(&got), DefaultMaxAge, t0, nil)
	if fmt.Sprint(got) != "[o-0 o-1 o-2]" {
		t.Errorf("replayed %v from a legacy spool", got)
	}
}

// TestRetriesDoNotGrowTheFileWithoutBound: an entry retried round after round is compacted.
func TestRetriesDoNotGrowTheFileWithoutBound(t *testing.T) {
	defer func(c int64) { compactAfter = c }(compactAfter)
	compactAfter = 64 << 10
	dir := t.TempDir()
	s := open(t, dir)
	appendN(t, s, 2)
	later := func(e Entry) (Disposition, error) {
		if e.Event.ID == "o-0" {
			return Later, errors.New("conflict")
		}
		return Applied, nil
	}
	for i := range 2000 {
		if i%2 == 1 {
			_ = s.Append(entry(1)) // something that succeeds behind it, so it is moved each time
		}
		if _, err := s.Replay(later, DefaultMaxAge, t0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, walFile)); fi.Size() > 2*compactAfter {
		t.Errorf("the spool file grew to %d bytes", fi.Size())
	}
	if depth, _ := s.Depth(); depth != 1 {
		t.Errorf("depth %d, want the one retried entry", depth)
	}
}

func TestFull(t *testing.T) {
	s, _ := Open(t.TempDir(), 400)
	var err error
	n := 0
	for ; n < 100 && err == nil; n++ {
		err = s.Append(entry(n))
	}
	if !errors.Is(err, ErrFull) || n < 2 {
		t.Errorf("after %d appends: %v, want ErrFull", n, err)
	}
}
