package measure

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// RSS is the resident memory of process pid in bytes, from VmRSS in /proc/<pid>/status (Linux only): what the
// kernel actually holds for it, unlike the Go heap figures, which miss stacks, cgo and memory not yet returned.
func RSS(pid int) (int64, error) {
	return rssFrom(filepath.Join("/proc", strconv.Itoa(pid), "status"))
}

// rssFrom reads VmRSS from a file in /proc/<pid>/status format; separate from RSS so tests can give a fake one.
func rssFrom(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }() // a read: nothing to lose
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		value, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		// "VmRSS:	   12345 kB": the kernel always reports kB (KiB).
		fields := strings.Fields(value)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("%s: unexpected VmRSS line %q", path, sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: VmRSS: %w", path, err)
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	// Kernel threads and zombies have no VmRSS line.
	return 0, fmt.Errorf("%s: no VmRSS line", path)
}

// FindProcess returns the PID of the one running process whose command line contains every one of parts (for
// the kube-apiserver and etcd a harness started through envtest, which does not expose their PIDs).
func FindProcess(parts ...string) (int, error) {
	return findProcess("/proc", parts...)
}

// findProcess is FindProcess over a /proc-like directory, so tests can give a fake one.
func findProcess(proc string, parts ...string) (int, error) {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return 0, err
	}
	found := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(proc, e.Name(), "cmdline"))
		if err != nil {
			continue // gone meanwhile, or not ours to read
		}
		cmdline := strings.ReplaceAll(string(raw), "\x00", " ")
		matches := true
		for _, p := range parts {
			matches = matches && strings.Contains(cmdline, p)
		}
		if !matches {
			continue
		}
		if found != 0 {
			return 0, fmt.Errorf("more than one process matches %q: %d and %d", parts, found, pid)
		}
		found = pid
	}
	if found == 0 {
		return 0, fmt.Errorf("no process matches %q", parts)
	}
	return found, nil
}
