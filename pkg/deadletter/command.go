package deadletter

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/servicemain"
)

// Command is `curator deadletters`: it lists the dead letters the flags select (a table
// on out, then the count by reason) and, with -replay, replays them.
func Command(out io.Writer) func(fs *flag.FlagSet) servicemain.RunFunc {
	return func(fs *flag.FlagSet) servicemain.RunFunc {
		kf := kafkabus.RegisterFlags(fs)
		var f Filter
		fs.StringVar(&f.Service, "service", "", "only the letters of this service: bridge, curator or retrain (empty: all)")
		fs.StringVar(&f.Reason, "reason", "", "only the letters of this reason, e.g. retry_exhausted (empty: all; -replay needs one)")
		since := fs.Duration("since", 0, "only the letters of this last while, e.g. 24h (0: all the topic holds)")
		replay := fs.Bool("replay", false, "produce the selected letters' payloads back to the topics they came from (examples and approvals only), once their cause is repaired")
		return func(ctx context.Context, log *zap.Logger) error {
			if !slices.Contains([]string{"", "bridge", "curator", "retrain"}, f.Service) {
				return fmt.Errorf("-service %q: want bridge, curator or retrain", f.Service)
			}
			if *replay && f.Reason == "" {
				// A letter whose cause is not repaired is only refused again: say which.
				return fmt.Errorf("-replay needs -reason (e.g. -reason retry_exhausted): replay the letters whose cause you repaired")
			}
			cfg, err := kf.Config("edgeloop-deadletters")
			if err != nil {
				return err
			}
			err = run(ctx, cfg, out, f, *since, *replay)
			if err != nil && ctx.Err() != nil {
				return fmt.Errorf("interrupted: %v", err) // not a clean exit, whatever was done before
			}
			return err
		}
	}
}

// run lists the letters f and since select on out and, with replay, replays them.
func run(ctx context.Context, cfg kafkabus.Config, out io.Writer, f Filter, since time.Duration, replay bool) error {
	if since > 0 {
		f.Since = time.Now().Add(-since)
	}
	letters, bad, err := List(ctx, cfg, f)
	if err != nil {
		return err
	}
	if err := printLetters(out, letters, bad); err != nil {
		return err
	}
	if !replay || len(letters) == 0 {
		return nil
	}
	prod, err := kafkabus.NewProducer(cfg, kafkabus.ProducerOptions{})
	if err != nil {
		return err
	}
	defer prod.Close()
	r, err := Replay(ctx, cfg, prod, letters)
	fmt.Fprintf(out, "replayed %d", r.Replayed)
	for _, why := range slices.Sorted(maps.Keys(r.Skipped)) {
		fmt.Fprintf(out, "; skipped %d: %s", r.Skipped[why], why)
	}
	fmt.Fprintln(out)
	return err
}

// printLetters writes one line per letter (the detail cut to 120 characters), then the
// count by reason.
func printLetters(out io.Writer, letters []Letter, bad int) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RECEIVED (UTC)\tSERVICE\tREASON\tSOURCE\tDETAIL")
	byReason := map[string]int{}
	for _, l := range letters {
		byReason[l.GetReason()]++
		detail := strings.ReplaceAll(l.GetDetail(), "\n", " ")
		if r := []rune(detail); len(r) > 120 {
			detail = string(r[:119]) + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.GetReceivedAt().AsTime().UTC().Format(time.DateTime), l.GetService(), l.GetReason(), l.GetSource(), detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d dead letters", len(letters))
	for _, r := range slices.Sorted(maps.Keys(byReason)) {
		fmt.Fprintf(out, "; %s %d", r, byReason[r])
	}
	if bad > 0 {
		fmt.Fprintf(out, " (and %d other messages on the topic, passed over)", bad)
	}
	_, err := fmt.Fprintln(out)
	return err
}
