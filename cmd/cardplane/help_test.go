package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandHelp walks the whole command tree: --help, -h and `help CMD` print the command's help to
// stdout and succeed, for every command there is, including the generated completion commands.
func TestEveryCommandHelp(t *testing.T) {
	var paths [][]string
	var walk func(cmd *cobra.Command, path []string)
	walk = func(cmd *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range cmd.Commands() {
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(newRootCommand(), nil)
	for _, want := range [][]string{{"manager"}, {"simulate"}, {"rules", "backtest"}, {"version"}, {"completion", "powershell"}} {
		if !containsPath(paths, want) {
			t.Errorf("no command %q in the tree", want)
		}
	}
	for _, path := range paths {
		for _, args := range [][]string{
			append(append([]string{}, path...), "--help"),
			append(append([]string{}, path...), "-h"),
			append([]string{"help"}, path...),
		} {
			var stdout, stderr bytes.Buffer
			// A fresh tree each time: cobra keeps parsed flag values on the commands.
			if err := execute(args, &stdout, &stderr); err != nil {
				t.Errorf("cardplane %s: %v", strings.Join(args, " "), err)
			}
			if !strings.Contains(stdout.String(), "Usage:") || stderr.Len() > 0 {
				t.Errorf("cardplane %s: want help on stdout and nothing on stderr, got stdout:\n%s\nstderr:\n%s",
					strings.Join(args, " "), stdout.String(), stderr.String())
			}
		}
	}
}

func containsPath(paths [][]string, want []string) bool {
	for _, p := range paths {
		if strings.Join(p, " ") == strings.Join(want, " ") {
			return true
		}
	}
	return false
}

// TestUsageErrors: a mistaken command line fails, says what is wrong, and points at the right help.
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args      []string
		want, see string
	}{
		{nil, "cardplane: name a command: ", "cardplane"},
		{[]string{"simulat"}, `unknown command "simulat" for "cardplane" (did you mean simulate?)`, "cardplane"},
		{[]string{"manager", "--no-such-flag"}, "unknown flag: --no-such-flag", "cardplane manager"},
		{[]string{"manager", "extra"}, `cardplane manager takes no arguments, got ["extra"]`, "cardplane manager"},
		{[]string{"manager", "--shutdown-delay=soon"}, `invalid argument "soon" for "--shutdown-delay"`, "cardplane manager"},
		{[]string{"simulate", "--example", "upay-card-status"}, "--endpoint and one of --file or --example are required", "cardplane simulate"},
		{[]string{"simulate", "--endpoint", "a/b/c", "--example", "x"}, `--endpoint "a/b/c": expected NAMESPACE/NAME or NAME`, "cardplane simulate"},
		{[]string{"simulate", "-n", "payments", "--endpoint", "default/upay-main", "--example", "x"},
			"--endpoint default/upay-main is in namespace default, --namespace says payments", "cardplane simulate"},
		{[]string{"rules", "lint"}, "rules lint: name at least one FILE", "cardplane rules lint"},
		{[]string{"version", "--short"}, "unknown flag: --short", "cardplane version"},
		{[]string{"completion", "tcsh"}, `unknown command "tcsh" for "cardplane completion"`, "cardplane completion"},
		{[]string{"completion", "bash", "extra"}, `"extra"`, "cardplane completion bash"},
		{[]string{"help", "rules", "nosuch"}, `unknown help topic "rules nosuch"`, "cardplane help"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		err := execute(c.args, &stdout, &stderr)
		if err == nil {
			t.Errorf("cardplane %s: no error", strings.Join(c.args, " "))
			continue
		}
		msg := describeError(err)
		if !strings.Contains(msg, c.want) || !strings.HasSuffix(msg, "\nRun '"+c.see+" --help' for usage.") {
			t.Errorf("cardplane %s: got %q, want %q and a pointer to %s --help", strings.Join(c.args, " "), msg, c.want, c.see)
		}
	}
}

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if err := execute([]string{"version"}, &stdout, &stdout); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"version: " + version + "\n", "\ncommit:  ", "\ngo:      go1."} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("version output lacks %q:\n%s", want, stdout.String())
		}
	}
}
