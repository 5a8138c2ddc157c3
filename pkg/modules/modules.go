// Package modules is edgeloop's one composition root, in the manner of grafana/loki's
// module table: every part of the system — the bridge, the curator with its UI, the
// model registry, the dashboard, retrain, and for the standalone the embedded servers,
// the project bootstrap, a simulated fleet and simulated annotators — is a module with
// its dependencies, declared once in this package's table, and -target picks which run
// in this process. Each service binary runs this table with its own default target;
// `-target=all` plus the embedded servers is the standalone that `make run` starts.
// Flags are registered once (Config), so a default lives in one place.
//
// The modules' implementations live in two packages, so that a binary links only what
// it can run: modules/headless (bridge, retrain: no UI) and modules/frontend (curator,
// registry, dashboard and the standalone's embedded servers, bootstrap, fleet and
// annotators).
package modules

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/edgeloop/edgeloop/pkg/servicemain"
)

// Module names.
const (
	Embedded   = "embedded"
	Bridge     = "bridge"
	Curator    = "curator"
	Registry   = "registry"
	Dashboard  = "dashboard"
	Retrain    = "retrain"
	Bootstrap  = "bootstrap"
	Fleet      = "fleet"
	Annotators = "annotators"
)

// Targets are names for sets of modules.
var targets = map[string][]string{
	"all":        {Bridge, Curator, Registry, Dashboard, Retrain},
	"standalone": {"all", Embedded, Bootstrap, Fleet, Annotators},
}

// Impl is how a module runs.
type Impl struct {
	// Setup prepares the module before any module runs, in dependency order: it may
	// register routes on, or start, what it depends on.
	Setup func(a *App) error
	// Run runs it until ctx ends (a module whose work is done may return nil early).
	Run func(ctx context.Context, a *App) error
}

// Module is one part of edgeloop: its name and the modules it needs.
type Module struct {
	Name string
	// Deps run too whenever this module does, and are set up before it.
	Deps []string
}

// table is the module table: a module comes after its dependencies.
func table() []Module {
	return []Module{
		{Name: Embedded},
		{Name: Bridge},
		{Name: Curator},
		{Name: Registry, Deps: []string{Curator}},
		{Name: Dashboard, Deps: []string{Curator, Registry}},
		{Name: Retrain},
		{Name: Bootstrap, Deps: []string{Curator}},
		{Name: Fleet, Deps: []string{Bootstrap}},
		{Name: Annotators, Deps: []string{Curator}},
	}
}

func targetHelp() string {
	var names []string
	for _, m := range table() {
		names = append(names, m.Name)
	}
	var ts []string
	for t, ms := range targets {
		ts = append(ts, t+" ("+strings.Join(ms, ", ")+")")
	}
	sort.Strings(ts)
	return strings.Join(names, ", ") + "; or " + strings.Join(ts, ", ")
}

// Resolve expands a comma-separated target into the modules to run, with their
// dependencies, in table order.
func Resolve(target string) ([]Module, error) {
	byName := map[string]Module{}
	for _, m := range table() {
		byName[m.Name] = m
	}
	want := map[string]bool{}
	var add func(name string) error
	add = func(name string) error {
		if ms, ok := targets[name]; ok {
			for _, n := range ms {
				if err := add(n); err != nil {
					return err
				}
			}
			return nil
		}
		m, ok := byName[name]
		if !ok {
			return fmt.Errorf("target %q: unknown module (want %s)", name, targetHelp())
		}
		if want[name] {
			return nil
		}
		want[name] = true
		for _, d := range m.Deps {
			if err := add(d); err != nil {
				return err
			}
		}
		return nil
	}
	names := strings.Split(target, ",")
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			if err := add(n); err != nil {
				return nil, err
			}
		}
	}
	if len(want) == 0 {
		return nil, errors.New("target: no module named")
	}
	var out []Module
	for _, m := range table() {
		if want[m.Name] {
			out = append(out, m)
		}
	}
	return out, nil
}

// Options are the process-level settings of Run.
type Options struct {
	// Out receives the standalone's banner (nil: none).
	Out io.Writer
}

// App is the state the modules of one process share.
type App struct {
	// Config is every module's configuration.
	Config *Config
	// Log is the process's logger.
	Log *zap.Logger
	// Options are the process's settings.
	Options Options

	mods []Module
	// local are the embedded servers' addresses, when the embedded module runs.
	local *LocalServers

	keyOnce sync.Once
	key     ed25519.PrivateKey
	keyErr  error
}

// Has reports whether module name runs in this process.
func (a *App) Has(name string) bool {
	return slices.ContainsFunc(a.mods, func(m Module) bool { return m.Name == name })
}

// Run sets up and runs the modules of cfg.Target, with the implementations impls
// provides, until ctx ends or one fails.
func Run(ctx context.Context, cfg *Config, impls map[string]Impl, log *zap.Logger, opts Options) error {
	mods, err := Resolve(cfg.Target)
	if err != nil {
		return err
	}
	if err := cfg.ApplyDemo(); err != nil {
		return err
	}
	for _, m := range mods {
		if _, ok := impls[m.Name]; !ok {
			return fmt.Errorf("target %q: module %s is not built into this binary (the standalone has every module)", cfg.Target, m.Name)
		}
	}
	a := &App{Config: cfg, Log: log, Options: opts, mods: mods}
	defer a.close()
	for _, m := range mods {
		if setup := impls[m.Name].Setup; setup != nil {
			if err := setup(a); err != nil {
				return fmt.Errorf("module %s: %w", m.Name, err)
			}
		}
	}
	if a.local == nil {
		if _, err := cfg.Kafka.Config("edgeloop"); err != nil {
			return err
		}
	}
	names := make([]string, len(mods))
	for i, m := range mods {
		names[i] = m.Name
	}
	log.Info("starting modules", zap.Strings("modules", names))
	g, gctx := errgroup.WithContext(ctx)
	for _, m := range mods {
		run := impls[m.Name].Run
		if run == nil {
			continue
		}
		g.Go(func() error {
			if err := run(gctx, a); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("module %s: %w", m.Name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func (a *App) close() {
	if a.local != nil && a.local.Close != nil {
		a.local.Close()
	}
}

// Main is the main of a binary that links impls and whose default -target is
// defaultTarget: flags (and EDGELOOP_* variables) for every module, then Run until
// SIGINT or SIGTERM.
func Main(name, defaultTarget string, impls map[string]Impl) {
	servicemain.Main(name, Command(defaultTarget, impls))
}

// Command is the body of Main for servicemain: it registers every module's flags and
// runs the modules of -target. Tests that run services as processes of their own (the
// fault suite) run it as the binaries do.
func Command(defaultTarget string, impls map[string]Impl) func(fs *flag.FlagSet) servicemain.RunFunc {
	return func(fs *flag.FlagSet) servicemain.RunFunc {
		c := RegisterFlags(fs, defaultTarget)
		return func(ctx context.Context, log *zap.Logger) error {
			return Run(ctx, c, impls, log, Options{Out: os.Stdout})
		}
	}
}

// Merge joins the implementations of several packages.
func Merge(sets ...map[string]Impl) map[string]Impl {
	out := map[string]Impl{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}
