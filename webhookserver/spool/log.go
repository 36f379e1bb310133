package spool

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// The file header and the magic every record starts with: reading resumes at the next magic after damage.
var (
	fileHeader  = []byte("CPSPOOL2")
	recordMagic = []byte{0xCA, 0x5D, 0x5B, 0x01}
)

const (
	headerLen = int64(8)
	// recordHead is magic, length and checksum.
	recordHead = 12
	// maxRecord bounds one record: an event is a few KiB, so a longer length is damage, not data.
	maxRecord = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// logFile is one append-only file of records, with its header.
type logFile struct {
	f    *os.File
	size int64
}

// openLog opens path, creating it with its header, converting a file of the first format, and cutting a torn
// tail so new records follow the last whole one.
func openLog(path string) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	l := &logFile{f: f}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	l.size = fi.Size()
	head := make([]byte, headerLen)
	if _, err := f.ReadAt(head, 0); err != nil && l.size >= headerLen {
		_ = f.Close()
		return nil, err
	}
	switch {
	case l.size == 0:
		err = l.reset()
	case !bytes.Equal(head, fileHeader) || l.size < headerLen:
		err = l.convertLegacy(path)
	default:
		_, end, _ := l.read(headerLen)
		if end < l.size {
			err = f.Truncate(end)
			l.size = end
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return l, nil
}

func (l *logFile) close() error { return l.f.Close() }

// reset empties the file to its header.
func (l *logFile) reset() error {
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	if _, err := l.f.WriteAt(fileHeader, 0); err != nil {
		return err
	}
	l.size = headerLen
	return l.f.Sync()
}

// append writes entries durably (fsync) or not at all; the file stays within maxBytes.
func (l *logFile) append(entries []Entry, maxBytes int64) error {
	var buf []byte
	for _, e := range entries {
		rec, err := encode(e)
		if err != nil {
			return err
		}
		buf = append(buf, rec...)
	}
	if l.size+int64(len(buf)) > maxBytes {
		return ErrFull
	}
	if _, err := l.f.WriteAt(buf, l.size); err != nil {
		_ = l.f.Truncate(l.size)
		return fmt.Errorf("spool: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		_ = l.f.Truncate(l.size)
		return fmt.Errorf("spool: %w", err)
	}
	l.size += int64(len(buf))
	return nil
}

func encode(e Entry) ([]byte, error) {
	payload, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	if len(payload) > maxRecord {
		return nil, fmt.Errorf("spool: an entry of %d bytes is larger than %d", len(payload), maxRecord)
	}
	rec := make([]byte, recordHead, recordHead+len(payload))
	copy(rec, recordMagic)
	binary.BigEndian.PutUint32(rec[4:8], uint32(len(payload)))
	binary.BigEndian.PutUint32(rec[8:12], crc32.Checksum(payload, castagnoli))
	return append(rec, payload...), nil
}

type record struct {
	e          Entry
	start, end int64 // offsets of the record in the file
}

// read returns the whole records from offset on, where the last whole record ends (or a torn one starts), and
// how many damaged places it skipped.
func (l *logFile) read(offset int64) ([]record, int64, int) {
	data := make([]byte, max(0, l.size-offset))
	if _, err := l.f.ReadAt(data, offset); err != nil && !errors.Is(err, io.EOF) {
		return nil, offset, 0
	}
	var out []record
	pos, end, corrupt := 0, offset, 0
	for pos < len(data) {
		rec, n, ok := parse(data[pos:])
		switch {
		case ok:
			rec.start, rec.end = offset+int64(pos), offset+int64(pos+n)
			out = append(out, rec)
			pos += n
			end = rec.end
		case n == 0: // a torn record at the tail: the log ends here
			return out, offset + int64(pos), corrupt
		default: // damage: resume at the next magic
			corrupt++
			next := bytes.Index(data[pos+1:], recordMagic)
			if next < 0 {
				return out, end, corrupt
			}
			pos += 1 + next
		}
	}
	return out, end, corrupt
}

// parse reads the record at the start of data: ok with its length, or n == 0 for a torn tail, or n > 0 and
// !ok for damage.
func parse(data []byte) (record, int, bool) {
	if len(data) < recordHead {
		if bytes.HasPrefix(recordMagic, data[:min(len(data), len(recordMagic))]) {
			return record{}, 0, false // the start of a record, cut short
		}
		return record{}, 1, false
	}
	if !bytes.Equal(data[:4], recordMagic) {
		return record{}, 1, false
	}
	n := int(binary.BigEndian.Uint32(data[4:8]))
	if n > maxRecord {
		return record{}, 1, false
	}
	if recordHead+n > len(data) {
		return record{}, 0, false
	}
	payload := data[recordHead : recordHead+n]
	var e Entry
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(data[8:12]) || json.Unmarshal(payload, &e) != nil {
		return record{}, 1, false
	}
	return record{e: e}, recordHead + n, true
}

// convertLegacy rewrites a file of the first format ([length][CRC][payload] records, no header) in this one,
// through a temporary file and a rename, so a crash leaves either.
func (l *logFile) convertLegacy(path string) error {
	data := make([]byte, l.size)
	if _, err := l.f.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	var entries []Entry
	for pos := 0; pos+8 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[pos : pos+4]))
		if n > maxRecord || pos+8+n > len(data) {
			break // the first format's torn tail or garbage: its end
		}
		payload := data[pos+8 : pos+8+n]
		var e Entry
		if crc32.Checksum(payload, castagnoli) == binary.BigEndian.Uint32(data[pos+4:pos+8]) && json.Unmarshal(payload, &e) == nil {
			entries = append(entries, e)
		}
		pos += 8 + n
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "convert-*")
	if err != nil {
		return err
	}
	nl := &logFile{f: tmp}
	if err := nl.reset(); err != nil {
		return err
	}
	if err := nl.append(entries, 1<<62); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	_ = l.f.Close()
	l.f, l.size = tmp, nl.size
	// The legacy offset file pointed into the old layout: every entry kept is pending again (replay is
	// idempotent).
	_ = os.Remove(filepath.Join(filepath.Dir(path), offsetFile))
	return nil
}

// entryID names a dead letter: a digest of its content and the time it died.
func entryID(e Entry) string {
	b, _ := json.Marshal(e)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}
