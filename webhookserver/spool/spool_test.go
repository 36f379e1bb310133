package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/cardplane/cardplane/webhookserver/event"
)

func entry(i int) Entry {
	return Entry{Endpoint: types.NamespacedName{Namespace: "ns", Name: "upay"}, Received: time.Unix(int64(1000+i), 0).UTC(),
		Event: event.Event{Type: "CSC_STATUS_CHANGE", ID: fmt.Sprint("o-", i), CardID: "C1",
			Challenge: &event.Challenge{Code: "739164"}}}
}

func TestAppendReplayInOrderAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := s.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(filepath.Join(dir, "spool.wal"))
	if bytes.Contains(data, []byte("739164")) {
		t.Fatal("a one-time code was written to the spool")
	}
	// Apply two, fail on the third: the rest stays, in order, also after a restart.
	var got []string
	n, err := s.Replay(func(e Entry) error {
		if len(got) == 2 {
			return errors.New("API server unavailable")
		}
		got = append(got, e.Event.ID)
		return nil
	})
	if n != 2 || err == nil {
		t.Fatalf("replayed %d, err %v", n, err)
	}
	_ = s.Close()
	s, err = Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if depth, oldest := s.Depth(); depth != 3 || !oldest.Equal(time.Unix(1002, 0)) {
		t.Fatalf("after reopen: depth %d oldest %s, want 3 and the third entry's time", depth, oldest)
	}
	if _, err := s.Replay(func(e Entry) error { got = append(got, e.Event.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[o-0 o-1 o-2 o-3 o-4]" {
		t.Errorf("replay order %v", got)
	}
	if depth, _ := s.Depth(); depth != 0 {
		t.Errorf("depth %d after a full replay", depth)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "spool.wal")); fi.Size() != 0 {
		t.Errorf("spool file not emptied: %d bytes", fi.Size())
	}
}

func TestTornTailAndCorruptRecords(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, 1<<20)
	for i := 0; i < 3; i++ {
		_ = s.Append(entry(i))
	}
	_ = s.Close()
	path := filepath.Join(dir, "spool.wal")
	data, _ := os.ReadFile(path)
	data[20] ^= 0xff                       // corrupt the first record's payload
	data = append(data, 0, 0, 0, 50, 1, 2) // a torn append at the tail
	_ = os.WriteFile(path, data, 0o600)
	s, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	_, _ = s.Replay(func(e Entry) error { got = append(got, e.Event.ID); return nil })
	if fmt.Sprint(got) != "[o-1 o-2]" || s.Corrupt() != 1 {
		t.Errorf("replayed %v with %d corrupt, want [o-1 o-2] and 1", got, s.Corrupt())
	}
	if err := s.Append(entry(9)); err != nil {
		t.Fatal(err)
	}
	got = nil
	_, _ = s.Replay(func(e Entry) error { got = append(got, e.Event.ID); return nil })
	if fmt.Sprint(got) != "[o-9]" {
		t.Errorf("after the torn tail was cut, replayed %v", got)
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
