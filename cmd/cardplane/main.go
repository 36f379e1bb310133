// Command cardplane is the cardplane operator: `cardplane manager` runs the controllers and the receiver,
// `cardplane dev` runs them on an embedded local control plane, `simulate` plays a provider and `rules` checks
// rule sets offline.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	_ "time/tzdata" // explicit time zones (tevau.timeZone) must work in images without a zoneinfo database

	"github.com/spf13/cobra"
	_ "golang.org/x/crypto/x509roots/fallback" // HTTPS destinations must verify in an image without a CA bundle
)

func main() {
	if err := execute(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "error: "+describeError(err))
		os.Exit(1)
	}
}

// execute runs one command line. Help goes to stdout; errors are returned, not printed, so that main reports
// each once and the tests see them as values.
func execute(args []string, stdout, stderr io.Writer) error {
	root := newRootCommand()
	root.SetArgs(append([]string{}, args...)) // never nil: cobra would read os.Args
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.Execute()
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "cardplane",
		Short: "Turn issued payment cards into Kubernetes objects",
		Long: `cardplane turns issued payment cards into Kubernetes objects: provider callbacks become Card and
CardTransaction resources, authorization requests are answered from rule sets, and every change is
projected, signed, to the systems a team names.`,
		Args: noArgs,
		RunE: requireSubcommand,
		// main prints the error once, with a pointer to --help for usage mistakes; a full usage dump would
		// bury the message.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.AddCommand(newManagerCommand(), newDevCommand(), newSimulateCommand(), newRulesCommand(), newSinksCommand(), newSpoolCommand(), newVersionCommand())
	// Created now rather than inside Execute, so that they are part of the tree markUsageErrors walks.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	refuseUnknownHelpTopics(root)
	// Groups run only to refuse a missing subcommand: their usage shows "cardplane rules [command]" alone,
	// not also "cardplane rules [flags]".
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(),
		"Usage:{{if .Runnable}}", "Usage:{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { // inherited by every subcommand
		return &usageError{command: c.CommandPath(), err: err}
	})
	markUsageErrors(root)
	return root
}

// usageError is a mistake in the command line rather than a failure of the work.
type usageError struct {
	command string // e.g. "cardplane rules lint"
	err     error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// describeError is what follows "error: ": for a usage mistake, also where the right usage is.
func describeError(err error) string {
	if u, ok := errors.AsType[*usageError](err); ok {
		return fmt.Sprintf("%v\nRun '%s --help' for usage.", err, u.command)
	}
	return err.Error()
}

// markUsageErrors turns the argument errors of every command, cobra's generated ones included, into
// usageErrors; a group without a subcommand (`cardplane completion`) is one too, not a request for help.
func markUsageErrors(cmd *cobra.Command) {
	if cmd.HasSubCommands() && !cmd.Runnable() {
		cmd.RunE = requireSubcommand
	}
	if validate := cmd.Args; validate != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			err := validate(c, args)
			if _, ok := errors.AsType[*usageError](err); err != nil && !ok {
				return &usageError{command: c.CommandPath(), err: err}
			}
			return err
		}
	}
	for _, sub := range cmd.Commands() {
		markUsageErrors(sub)
	}
}

// refuseUnknownHelpTopics makes `cardplane help nosuch` an error; cobra's help command would print the
// nearest command's help and succeed.
func refuseUnknownHelpTopics(root *cobra.Command) {
	help, _, err := root.Find([]string{"help"})
	if err != nil || help == root {
		return
	}
	help.Args = func(_ *cobra.Command, args []string) error {
		if _, rest, err := root.Find(args); err != nil || len(rest) > 0 {
			return fmt.Errorf("unknown help topic %q", strings.Join(args, " "))
		}
		return nil
	}
}

// noArgs rejects positional arguments. After a command with subcommands, the first one is an unknown command.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if !cmd.HasSubCommands() {
		return fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += " (did you mean " + strings.Join(s, " or ") + "?)"
	}
	return errors.New(msg)
}

// requireSubcommand runs a command that only groups others. Alone it is a usage mistake rather than a request
// for help, so that a script missing a word fails instead of passing.
func requireSubcommand(cmd *cobra.Command, _ []string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	list := strings.Join(names, ", ")
	if n := len(names); n > 1 {
		list = strings.Join(names[:n-1], ", ") + " or " + names[n-1]
	}
	return &usageError{command: cmd.CommandPath(), err: fmt.Errorf("%s: name a command: %s", cmd.Name(), list)}
}

// cacheDir is where the dev control plane, its kubeconfig and the simulate defaults live.
func cacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "cardplane")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "cardplane")
}
