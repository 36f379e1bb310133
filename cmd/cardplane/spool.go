package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cardplane/cardplane/webhookserver/spool"
)

// defaultSpoolDir is where the chart mounts the spool (the manager's --spool-dir default).
const defaultSpoolDir = "/var/lib/cardplane/spool"

// newSpoolCommand looks into a replica's spool directory: what waits for the API server, and the dead letters
// (verified events it refused for good), and asks the replica to requeue dead letters. It only reads the
// replica's files; a requeue is a request file the running replica adopts. Run it in the pod:
// kubectl exec deploy/cardplane -- cardplane spool list.
func newSpoolCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "spool",
		Short: "List, show and requeue what a replica's spool holds (pending events and dead letters)",
		Long: `Look into a replica's spool directory: the verified events waiting for the API server, and the dead letters
— verified events the API server refused for good (a namespace gone, a quota, a name another ID holds), which
were acknowledged and kept. Run it where the spool is, e.g.:

  kubectl -n cardplane-system exec deploy/cardplane -- cardplane spool list

It only reads the replica's files; requeue leaves a request the running replica adopts within a second.`,
		Args: noArgs,
		RunE: requireSubcommand,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", defaultSpoolDir, "the spool directory (the manager's --spool-dir)")
	requeue := newRequeueCommand(&dir)
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List pending events and dead letters",
			Args:  noArgs,
			RunE:  func(c *cobra.Command, _ []string) error { return spoolList(c.OutOrStdout(), dir) },
		},
		&cobra.Command{
			Use:   "show ID",
			Short: "Show one dead letter as JSON (IDs from list; never holds card numbers, CVCs or codes)",
			Args:  cobra.ExactArgs(1),
			RunE:  func(c *cobra.Command, args []string) error { return spoolShow(c.OutOrStdout(), dir, args[0]) },
		},
		requeue,
	)
	return cmd
}

// newRequeueCommand moves dead letters back into the spool.
func newRequeueCommand(dir *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "requeue ID... | --all",
		Short: "Move dead letters back into the spool, to be applied again (after the cause is fixed)",
		RunE: func(c *cobra.Command, args []string) error {
			all, _ := c.Flags().GetBool("all")
			if all == (len(args) > 0) {
				return &usageError{command: c.CommandPath(), err: fmt.Errorf("name dead letters by ID, or give --all")}
			}
			if all {
				args = []string{"*"}
			}
			name, err := spool.RequestRequeue(*dir, args, time.Now())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.OutOrStdout(), "requested (%s); the running replica adopts it at its next replay\n", name)
			return err
		},
	}
	cmd.Flags().Bool("all", false, "requeue every dead letter")
	return cmd
}

func spoolList(out io.Writer, dir string) error {
	c, err := spool.Inspect(dir)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "%d pending, %d dead letters, %d damaged places skipped\n\n", len(c.Pending), len(c.DeadLetters), c.Corrupt)
	if len(c.DeadLetters) > 0 {
		fmt.Fprintln(w, "DEAD LETTER\tENDPOINT\tEVENT\tRECEIVED\tDEAD SINCE\tREASON")
		for _, e := range c.DeadLetters {
			fmt.Fprintf(w, "%s\t%s\t%s %s\t%s\t%s\t%s\n", e.ID, e.Endpoint, e.Event.Type, e.Event.ID,
				e.Received.UTC().Format(time.RFC3339), e.DeadAt.UTC().Format(time.RFC3339), clipReason(e.Reason))
		}
		fmt.Fprintln(w)
	}
	if len(c.Pending) > 0 {
		fmt.Fprintln(w, "PENDING\tENDPOINT\tEVENT\tRECEIVED\tATTEMPTS")
		for i, e := range c.Pending {
			fmt.Fprintf(w, "%d\t%s\t%s %s\t%s\t%d\n", i+1, e.Endpoint, e.Event.Type, e.Event.ID, e.Received.UTC().Format(time.RFC3339), e.Attempts)
		}
	}
	return w.Flush()
}

func clipReason(s string) string {
	if len(s) > 200 { // an API server's refusal names its cause (the quota, the namespace) after the object
		return s[:197] + "..."
	}
	return s
}

func spoolShow(out io.Writer, dir, id string) error {
	c, err := spool.Inspect(dir)
	if err != nil {
		return err
	}
	for _, e := range c.DeadLetters {
		if e.ID == id {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(e)
		}
	}
	return fmt.Errorf("no dead letter %q in %s (cardplane spool list shows their IDs)", id, dir)
}
