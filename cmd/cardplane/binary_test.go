package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinaryExitCodes runs the built binary, as a shell or a Deployment does: help exits 0 (before cobra,
// `cardplane simulate --help` printed its flags and exited 1), a usage mistake exits 1 with the message on
// stderr, and -ldflags -X stamps the version and commit the Makefile passes.
func TestBinaryExitCodes(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "cardplane")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v0.0.0-test -X main.commit=0123456789abcdef", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cases := []struct {
		args           []string
		exit           int
		stdout, stderr string
	}{
		{[]string{"simulate", "--help"}, 0, "--endpoint", ""},
		{[]string{"manager", "-h"}, 0, "--zap-log-level", ""},
		{[]string{"help", "rules", "backtest"}, 0, "--fail-on-change", ""},
		{[]string{"simulate", "--no-such-flag"}, 1, "", "error: unknown flag: --no-such-flag\n"},
		{[]string{"rules"}, 1, "", "error: rules: name a command: "},
		{[]string{"version"}, 0, "version: v0.0.0-test\ncommit:  0123456789abcdef\n", ""},
	}
	for _, c := range cases {
		cmd := exec.Command(bin, c.args...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		exit := 0
		if exitErr, ok := errors.AsType[*exec.ExitError](err); ok {
			exit = exitErr.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if exit != c.exit || !strings.Contains(stdout.String(), c.stdout) || !strings.Contains(stderr.String(), c.stderr) ||
			(c.stderr == "" && stderr.Len() > 0) {
			t.Errorf("cardplane %s: exit %d, want %d; stdout (want %q):\n%s\nstderr (want %q):\n%s",
				strings.Join(c.args, " "), exit, c.exit, c.stdout, stdout.String(), c.stderr, stderr.String())
		}
	}
}
