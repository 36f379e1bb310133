package testenv

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// MarkedBlocks returns the ```sh blocks of a Markdown file that follow a marker line (such as
// "<!-- walk -->"), in order: the commands a guide's test runs unchanged. A marker not followed by a ```sh
// block, or a file with none, fails the test.
func MarkedBlocks(t testing.TB, path, marker string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []string
	var cur *strings.Builder
	marked := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur != nil && line == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		case strings.TrimSpace(line) == marker:
			marked = true
		case marked && line == "```sh":
			cur, marked = &strings.Builder{}, false
		case marked && strings.TrimSpace(line) != "":
			t.Fatalf("%s: %s is not followed by a ```sh block but by %q", path, marker, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(blocks) == 0 {
		t.Fatalf("%s has no %s blocks", path, marker)
	}
	return blocks
}
