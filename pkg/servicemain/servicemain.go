// Package servicemain is the shared body of every edgeloop binary's main: flags bound to
// EDGELOOP_* variables, a zap logger, a context cancelled by SIGINT/SIGTERM, and an exit
// status that says whether the run failed.
package servicemain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/logging"
)

// RunFunc runs a service until ctx ends.
type RunFunc func(ctx context.Context, log *zap.Logger) error

// Main registers the service's flags through setup, parses os.Args, and runs what setup
// returned. It never returns.
func Main(name string, setup func(fs *flag.FlagSet) RunFunc) {
	os.Exit(Run(name, os.Args[1:], setup))
}

// Run is Main without the exit, for tests: it returns the exit status.
func Run(name string, args []string, setup func(fs *flag.FlagSet) RunFunc) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var lo logging.Options
	lo.Register(fs)
	run := setup(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage of %s (every flag can also be set as EDGELOOP_<FLAG>):\n", name)
		fs.PrintDefaults()
	}
	if err := config.Parse(fs, args, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	log, err := logging.New(name, lo)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("stopped with an error", zap.Error(err))
		return 1
	}
	return 0
}
