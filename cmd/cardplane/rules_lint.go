package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cardplane/cardplane/internal/rules"
)

func newRulesLintCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "lint FILE...",
		Short: "Validate rule sets",
		Long: `Parse, validate and compile (CEL included) each rule-set file, and report every problem as
FILE:LINE: rule NAME: message. A ConfigMap without the cards.cardplane.io/rule-set: "true" label fails too:
the receiver would never load it.`,
		Example: `  cardplane rules lint rules/*.yaml`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("rules lint: name at least one FILE")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, files []string) error { return rulesLint(files, cmd.OutOrStdout()) },
	}
}

func rulesLint(files []string, stdout io.Writer) error {
	failed := 0
	for _, path := range files {
		f, err := readRuleSetFile(path)
		if err != nil {
			fmt.Fprintln(stdout, err)
			failed++
			continue
		}
		if problems := f.lint(); len(problems) > 0 {
			fmt.Fprintln(stdout, strings.Join(problems, "\n"))
			failed++
			continue
		}
		rs, err := rules.Parse(f.data)
		if err != nil { // Validate found nothing, so this cannot happen; report it rather than pass
			fmt.Fprintf(stdout, "%s: %v\n", path, err)
			failed++
			continue
		}
		noun := "rules"
		if rs.Len() == 1 {
			noun = "rule"
		}
		fmt.Fprintf(stdout, "%s: ok (%d %s)\n", path, rs.Len(), noun)
	}
	if failed > 0 {
		return fmt.Errorf("rules lint: %d of %d files failed", failed, len(files))
	}
	return nil
}
