package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/scheme"
)

// sinksResource names CardEventSinks in errors that ask for permissions or CRDs.
const sinksResource = "cardeventsinks.cards.cardplane.io"

// sinksOptions are the connection flags the sinks commands share.
type sinksOptions struct {
	cluster *clusterFlags
}

// sinksConn is a client and the namespace a bare NAME is in.
type sinksConn struct {
	c  client.Client
	ns string
}

// newSinksCommand inspects and operates CardEventSinks through the kubeconfig: what app teams do with their
// sinks besides editing them. Resend and replay only set the annotations the controller acts on.
func newSinksCommand() *cobra.Command {
	o := &sinksOptions{}
	cmd := &cobra.Command{
		Use:   "sinks",
		Short: "List CardEventSinks, show their dead letters, resend them or replay events",
		Long: `Inspect and operate CardEventSinks (short name cpsink) with the kubeconfig: list them with their delivery
counters, show the states a sink gave up on, and ask the controller to resend those or to replay what was
received since a point in time. resend and replay set an annotation on the sink that the running cardplane
manager acts on and then removes; --wait waits for that.`,
		Example: `  cardplane sinks list -A
  cardplane sinks dead-letters orders -n team-a
  cardplane sinks resend orders -n team-a --wait
  cardplane sinks replay orders -n team-a --since 2h --wait`,
		Args: noArgs,
		RunE: requireSubcommand,
	}
	o.cluster = bindClusterFlags(cmd.PersistentFlags(), "namespace of the sinks (default: the kubeconfig context's namespace, then default)")
	cmd.AddCommand(newSinksListCommand(o), newSinksDeadLettersCommand(o), newSinksResendCommand(o), newSinksReplayCommand(o))
	return cmd
}

func newSinksListCommand(o *sinksOptions) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "list [-n NAMESPACE | -A]",
		Short: "List the sinks with readiness, transport and delivery counters",
		Args: func(c *cobra.Command, args []string) error {
			if err := noArgs(c, args); err != nil {
				return err
			}
			if all && o.cluster.overrides.Context.Namespace != "" {
				return errors.New("give --namespace or --all-namespaces, not both")
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			conn, err := o.connect(c)
			if err != nil {
				return err
			}
			ns := conn.ns
			if all {
				ns = ""
			}
			return conn.list(c.Context(), c.OutOrStdout(), ns)
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list the sinks of every namespace")
	return cmd
}

func newSinksDeadLettersCommand(o *sinksOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "dead-letters [NAMESPACE/]NAME [-o table|json]",
		Short: "List the states a sink gave up on (status.deadLetters), oldest first",
		Args: func(c *cobra.Command, args []string) error {
			if err := o.oneSink(c, args); err != nil {
				return err
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("--output %q: give table or json", output)
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			conn, err := o.connect(c)
			if err != nil {
				return err
			}
			sink, err := conn.get(c.Context(), conn.key(args[0]))
			if err != nil {
				return err
			}
			return printDeadLetters(c.OutOrStdout(), sink, output)
		},
		ValidArgsFunction: o.completeSinks,
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json (the status.deadLetters entries)")
	return cmd
}

// waitFlags are --wait and --timeout of resend and replay.
type waitFlags struct {
	wait    bool
	timeout time.Duration
}

// check refuses a --timeout that --wait could not wait.
func (w *waitFlags) check() error {
	if w.wait && w.timeout <= 0 {
		return fmt.Errorf("--timeout %s: give a positive duration for --wait, such as 2m", w.timeout)
	}
	return nil
}

func (w *waitFlags) bind(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&w.wait, "wait", false, "wait until the controller has taken the request")
	cmd.Flags().DurationVar(&w.timeout, "timeout", time.Minute, "how long --wait waits")
}

func newSinksResendCommand(o *sinksOptions) *cobra.Command {
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "resend [NAMESPACE/]NAME [--wait]",
		Short: "Ask the controller to deliver the sink's dead letters again (after the cause is fixed)",
		Long: `Set the ` + cardsv1alpha1.AnnotationResendDeadLetters + ` annotation on the sink: the controller queues the
objects of status.deadLetters again and removes the annotation; each letter stays listed until its object's
state is delivered. Fails when there are no dead letters. Each state is delivered as it is now, with the event ID it was first sent with.`,
		Args: func(c *cobra.Command, args []string) error {
			if err := o.oneSink(c, args); err != nil {
				return err
			}
			return w.check()
		},
		RunE: func(c *cobra.Command, args []string) error {
			conn, err := o.connect(c)
			if err != nil {
				return err
			}
			return conn.resend(c.Context(), c.OutOrStdout(), conn.key(args[0]), w)
		},
		ValidArgsFunction: o.completeSinks,
	}
	w.bind(cmd)
	return cmd
}

// replayFlags are the flags of `cardplane sinks replay`.
type replayFlags struct {
	waitFlags
	since time.Duration
	from  string
	start time.Time // resolved by validate
}

func newSinksReplayCommand(o *sinksOptions) *cobra.Command {
	r := &replayFlags{}
	cmd := &cobra.Command{
		Use:   "replay [NAMESPACE/]NAME (--since DURATION | --from TIME) [--wait]",
		Short: "Ask the controller to deliver again what the sink matched since a point in time",
		Long: `Set the ` + cardsv1alpha1.AnnotationReplayFrom + ` annotation on the sink: the controller queues again, for
this sink only, the current state of every matching object whose last event was received at or after the
time (whole seconds, UTC), removes the annotation and records status.replay. With --wait, prints how many
objects were queued.`,
		Example: `  cardplane sinks replay orders -n team-a --since 30m --wait
  cardplane sinks replay orders -n team-a --from 2025-06-01T08:00:00Z`,
		Args: func(c *cobra.Command, args []string) error {
			if err := o.oneSink(c, args); err != nil {
				return err
			}
			if err := r.check(); err != nil {
				return err
			}
			return r.validate(c, time.Now())
		},
		RunE: func(c *cobra.Command, args []string) error {
			conn, err := o.connect(c)
			if err != nil {
				return err
			}
			return conn.replay(c.Context(), c.OutOrStdout(), conn.key(args[0]), r)
		},
		ValidArgsFunction: o.completeSinks,
	}
	cmd.Flags().DurationVar(&r.since, "since", 0, "replay what was received in this last while (e.g. 30m, 6h)")
	cmd.Flags().StringVar(&r.from, "from", "", "replay what was received at or after this RFC 3339 time (e.g. 2025-06-01T08:00:00Z)")
	r.bind(cmd)
	return cmd
}

// validate resolves --since or --from into the time to replay from, which must not be after now.
func (r *replayFlags) validate(cmd *cobra.Command, now time.Time) error {
	since, from := cmd.Flags().Changed("since"), cmd.Flags().Changed("from")
	switch {
	case since == from:
		return errors.New("give exactly one of --since DURATION or --from TIME")
	case since && r.since <= 0:
		return fmt.Errorf("--since %s: give a positive duration, such as 30m or 6h", r.since)
	case since:
		r.start = now.Add(-r.since)
	default:
		t, err := time.Parse(time.RFC3339, r.from)
		if err != nil {
			return fmt.Errorf("--from %q is not an RFC 3339 time such as 2025-06-01T08:00:00Z or 2025-06-01T10:00:00+02:00: %w", r.from, err)
		}
		if t.After(now) {
			return fmt.Errorf("--from %s is in the future (now is %s): replay delivers again what was already received, give a past time",
				r.from, now.UTC().Format(time.RFC3339))
		}
		r.start = t
	}
	// Whole seconds, rounded down: the annotation is a plain RFC 3339 time, and an earlier start only replays more.
	r.start = r.start.UTC().Truncate(time.Second)
	return nil
}

// oneSink checks that the command names one sink, as NAME or NAMESPACE/NAME agreeing with --namespace.
func (o *sinksOptions) oneSink(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s: name one CardEventSink, as NAME or NAMESPACE/NAME (cardplane sinks list shows them), got %d arguments",
			cmd.CommandPath(), len(args))
	}
	ns, name, qualified := strings.Cut(args[0], "/")
	if !qualified {
		return nil
	}
	if ns == "" || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("%q: expected NAMESPACE/NAME or NAME", args[0])
	}
	if n := o.cluster.overrides.Context.Namespace; n != "" && n != ns {
		return fmt.Errorf("%s is in namespace %s, --namespace says %s", args[0], ns, n)
	}
	return nil
}

// connect reads the kubeconfig. API warnings go to stderr, as kubectl prints them.
func (o *sinksOptions) connect(cmd *cobra.Command) (*sinksConn, error) {
	cc := o.cluster.clientConfig()
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w (set --kubeconfig or $KUBECONFIG)", err)
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w (set --kubeconfig or $KUBECONFIG)", err)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 30 * time.Second // one request; --wait polls with many
	cfg.WarningHandler = rest.NewWarningWriter(cmd.ErrOrStderr(), rest.WarningWriterOptions{Deduplicate: true})
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Host, err)
	}
	return &sinksConn{c: c, ns: ns}, nil
}

// completeSinks completes NAME with the sinks of the namespace.
func (o *sinksOptions) completeSinks(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	conn, err := o.connect(cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var list cardsv1alpha1.CardEventSinkList
	if err := conn.c.List(cmd.Context(), &list, client.InNamespace(conn.ns)); err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var names []cobra.Completion
	for _, s := range list.Items {
		names = append(names, s.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// key names the sink of arg: NAMESPACE/NAME, or NAME in the namespace of --namespace or the context.
func (s *sinksConn) key(arg string) client.ObjectKey {
	if ns, name, ok := strings.Cut(arg, "/"); ok {
		return client.ObjectKey{Namespace: ns, Name: name}
	}
	return client.ObjectKey{Namespace: s.ns, Name: arg}
}

func (s *sinksConn) get(ctx context.Context, key client.ObjectKey) (*cardsv1alpha1.CardEventSink, error) {
	sink := &cardsv1alpha1.CardEventSink{}
	if err := s.c.Get(ctx, key, sink); err != nil {
		return nil, describeSinkError(err, "get", key)
	}
	return sink, nil
}

// describeSinkError says what to do about a failed request for the sink key (or, with an empty name, the sinks
// of key's namespace; every namespace when that is empty too).
func describeSinkError(err error, verb string, key client.ObjectKey) error {
	where := "in namespace " + key.Namespace
	if key.Namespace == "" {
		where = "in any namespace"
	}
	switch {
	case apierrors.IsNotFound(err) && key.Name != "":
		return fmt.Errorf("cardeventsink %s not found in namespace %s: check the name and --namespace (cardplane sinks list -A lists every sink)",
			key.Name, key.Namespace)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("not allowed to %s %s %s: ask for the %s permission on %s: %w", verb, sinksResource, where, verb, sinksResource, err)
	case meta.IsNoMatchError(err) || apierrors.IsNotFound(err):
		return fmt.Errorf("the cluster does not serve %s: install or upgrade the cardplane CRDs (%w)", sinksResource, err)
	}
	return fmt.Errorf("%s %s %s: %w", verb, sinksResource, where, err)
}

func (s *sinksConn) list(ctx context.Context, out io.Writer, ns string) error {
	var list cardsv1alpha1.CardEventSinkList
	if err := s.c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return describeSinkError(err, "list", client.ObjectKey{Namespace: ns})
	}
	if len(list.Items) == 0 {
		where := "namespace " + ns
		if ns == "" {
			where = "any namespace"
		}
		_, err := fmt.Fprintf(out, "No CardEventSinks in %s.\n", where)
		return err
	}
	slices.SortFunc(list.Items, func(a, b cardsv1alpha1.CardEventSink) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	header := "NAME\tREADY\tKIND\tSTATE\tDELIVERED\tFAILED\tFILTERED\tDEAD\tPENDING\tLAG"
	if ns == "" {
		header = "NAMESPACE\t" + header
	}
	fmt.Fprintln(w, header)
	for i := range list.Items {
		sink := &list.Items[i]
		st := sink.Status
		if ns == "" {
			fmt.Fprintf(w, "%s\t", sink.Namespace)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", sink.Name, readyColumn(sink), sinkKind(sink.Spec.Sink),
			orDash(string(st.State)), st.Delivered, st.Failed, st.Filtered, st.DeadLettered, st.Pending,
			duration.HumanDuration(time.Duration(st.LagSeconds)*time.Second))
	}
	return w.Flush()
}

// readyColumn is the Ready condition's status, with its reason when it is not True.
func readyColumn(sink *cardsv1alpha1.CardEventSink) string {
	c := meta.FindStatusCondition(sink.Status.Conditions, cardsv1alpha1.ConditionReady)
	switch {
	case c == nil:
		return "Unknown (not reconciled yet)"
	case c.Status == metav1.ConditionTrue || c.Reason == "":
		return string(c.Status)
	}
	return string(c.Status) + " (" + c.Reason + ")"
}

func sinkKind(s cardsv1alpha1.SinkSpec) string {
	switch {
	case s.Webhook != nil:
		return "webhook"
	case s.CloudEvents != nil:
		return "cloudEvents"
	case s.Kafka != nil:
		return "kafka"
	case s.NATS != nil:
		return "nats"
	}
	return "-"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printDeadLetters prints status.deadLetters oldest first, as a table or as a JSON array.
func printDeadLetters(out io.Writer, sink *cardsv1alpha1.CardEventSink, format string) error {
	letters := slices.Clone(sink.Status.DeadLetters)
	slices.SortStableFunc(letters, func(a, b cardsv1alpha1.DeadLetter) int { return timeOf(a.Time).Compare(timeOf(b.Time)) })
	if format == "json" {
		if letters == nil {
			letters = []cardsv1alpha1.DeadLetter{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(letters)
	}
	ref := sink.Namespace + "/" + sink.Name
	if len(letters) == 0 {
		_, err := fmt.Fprintf(out, "cardeventsink %s has no dead letters (%d dead-lettered since it was created).\n", ref, sink.Status.DeadLettered)
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tKIND\tOBJECT\tSEQ\tATTEMPTS\tEVENT ID\tDLQ\tREASON")
	for _, d := range letters {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", timeOf(d.Time).UTC().Format(time.RFC3339), d.Kind, d.Name, d.StateSequence,
			d.Attempts, d.EventID, orDash(d.DeadLetterSink), clipReason(d.Reason))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%d dead letters of cardeventsink %s; cardplane sinks resend %s delivers them again.\n", len(letters), ref, ref)
	if v, ok := sink.Annotations[cardsv1alpha1.AnnotationResendDeadLetters]; ok {
		fmt.Fprintf(out, "A resend requested at %s is waiting for the controller.\n", v)
	}
	return nil
}

func (s *sinksConn) resend(ctx context.Context, out io.Writer, key client.ObjectKey, w waitFlags) error {
	sink, err := s.get(ctx, key)
	if err != nil {
		return err
	}
	n := len(sink.Status.DeadLetters)
	if n == 0 {
		return fmt.Errorf("cardeventsink %s has no dead letters to resend (status.deadLetters is empty): nothing to do", key)
	}
	value := time.Now().UTC().Format(time.RFC3339Nano) // a new value each time: a repeat is a new request
	if err := s.annotate(ctx, key, cardsv1alpha1.AnnotationResendDeadLetters, value); err != nil {
		return err
	}
	fmt.Fprintf(out, "requested a resend of the %d dead letters of cardeventsink %s (%s=%s)\n", n, key,
		cardsv1alpha1.AnnotationResendDeadLetters, value)
	if !w.wait {
		_, err := fmt.Fprintf(out, "the cardplane manager acts on it and removes the annotation; --wait waits for that\n")
		return err
	}
	sink, err = s.waitTaken(ctx, key, cardsv1alpha1.AnnotationResendDeadLetters, value, w.timeout, nil)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "the controller took the request: the dead letters are queued again; each stays in status.deadLetters until it is delivered (%d now)\n",
		len(sink.Status.DeadLetters))
	return err
}

func (s *sinksConn) replay(ctx context.Context, out io.Writer, key client.ObjectKey, r *replayFlags) error {
	sink, err := s.get(ctx, key)
	if err != nil {
		return err
	}
	before := sink.Status.Replay
	value := r.start.Format(time.RFC3339)
	if err := s.annotate(ctx, key, cardsv1alpha1.AnnotationReplayFrom, value); err != nil {
		return err
	}
	fmt.Fprintf(out, "requested a replay of cardeventsink %s from %s (annotation %s)\n", key, value, cardsv1alpha1.AnnotationReplayFrom)
	if !r.wait {
		_, err := fmt.Fprintf(out, "the cardplane manager acts on it and removes the annotation; --wait waits for that\n")
		return err
	}
	// Done when the annotation is gone and status.replay records this replay (the two may be written apart).
	recorded := func(sink *cardsv1alpha1.CardEventSink) bool {
		got := sink.Status.Replay
		return got != nil && got.From.Equal(&metav1.Time{Time: r.start}) && (before == nil || !sameReplay(got, before))
	}
	sink, err = s.waitTaken(ctx, key, cardsv1alpha1.AnnotationReplayFrom, value, r.timeout, recorded)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "the controller queued %d objects again (at %s)\n", sink.Status.Replay.Queued,
		timeOf(sink.Status.Replay.Time).UTC().Format(time.RFC3339))
	return err
}

func sameReplay(a, b *cardsv1alpha1.ReplayStatus) bool {
	return a.From.Equal(b.From) && a.Queued == b.Queued && a.Time.Equal(b.Time)
}

// annotate sets one annotation on the sink with a merge patch, leaving the rest of the object alone.
func (s *sinksConn) annotate(ctx context.Context, key client.ObjectKey, name, value string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{name: value}}})
	if err != nil {
		return err
	}
	sink := &cardsv1alpha1.CardEventSink{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	if err := s.c.Patch(ctx, sink, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return describeSinkError(err, "patch", key)
	}
	return nil
}

// waitTaken polls the sink until the controller has replaced or removed the annotation's value (and done,
// when given, holds: only replay gives one, to see status.replay), for at most timeout.
func (s *sinksConn) waitTaken(ctx context.Context, key client.ObjectKey, annotation, value string, timeout time.Duration,
	done func(*cardsv1alpha1.CardEventSink) bool) (*cardsv1alpha1.CardEventSink, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	taken := false
	for {
		sink := &cardsv1alpha1.CardEventSink{}
		switch err := s.c.Get(ctx, key, sink); {
		case apierrors.IsNotFound(err):
			return nil, fmt.Errorf("cardeventsink %s was deleted while waiting for the controller", key)
		case err != nil:
			return nil, describeSinkError(err, "get", key)
		}
		if taken = sink.Annotations[annotation] != value; taken && (done == nil || done(sink)) {
			return sink, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			if taken {
				return nil, fmt.Errorf("cardeventsink %s: the controller removed %s but status.replay does not record the replay after %s: see kubectl get cardeventsink -n %s %s -o yaml",
					key, annotation, timeout, key.Namespace, key.Name)
			}
			return nil, fmt.Errorf("cardeventsink %s: the controller did not take the request within %s (%s is still set): "+
				"check that the cardplane manager runs and watches namespace %s; the request stays and is acted on when it does",
				key, timeout, annotation, key.Namespace)
		case <-tick.C:
		}
	}
}

// timeOf is t's time, the zero time when t is nil.
func timeOf(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}
