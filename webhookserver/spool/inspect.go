package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Contents is what a spool directory holds, read without changing it (a running replica owns the files).
type Contents struct {
	Pending, DeadLetters []Entry
	// Corrupt counts damaged places skipped while reading.
	Corrupt int
}

// Inspect reads a spool directory without writing to it: safe while the replica that owns it runs.
func Inspect(dir string) (*Contents, error) {
	c := &Contents{}
	offset := headerLen
	if data, err := os.ReadFile(filepath.Join(dir, offsetFile)); err == nil {
		if off, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); err == nil && off >= headerLen {
			offset = off
		}
	}
	for _, f := range []struct {
		name string
		from int64
		into *[]Entry
	}{{walFile, offset, &c.Pending}, {deadLetterFile, headerLen, &c.DeadLetters}} {
		records, corrupt, err := readOnly(filepath.Join(dir, f.name), f.from)
		if err != nil {
			return nil, err
		}
		c.Corrupt += corrupt
		for _, r := range records {
			*f.into = append(*f.into, r.e)
		}
	}
	return c, nil
}

func readOnly(path string, from int64) ([]record, int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	head := make([]byte, headerLen)
	if fi.Size() > 0 {
		if _, err := f.ReadAt(head, 0); err != nil || string(head) != string(fileHeader) {
			return nil, 0, fmt.Errorf("%s is not a spool file of this version (a replica converts it when it opens the spool)", path)
		}
	}
	l := &logFile{f: f, size: fi.Size()}
	records, _, corrupt := l.read(max(from, headerLen))
	return records, corrupt, nil
}

// RequestRequeue asks the replica that owns dir to move dead letters back into its spool: the IDs given, or
// all with "*". It writes a request file the replica adopts at its next replay (within about a second); it
// never writes the replica's own files.
func RequestRequeue(dir string, ids []string, now time.Time) (string, error) {
	if len(ids) == 0 {
		return "", errors.New("name the dead letters to requeue, or * for all")
	}
	tmp, err := os.CreateTemp(dir, ".requeue-*")
	if err != nil {
		return "", err
	}
	_, err = tmp.WriteString(strings.Join(ids, "\n") + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	name := filepath.Join(dir, fmt.Sprintf("%s%d", requeuePrefix, now.UnixNano()))
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return "", err
	}
	return name, nil
}
