// Package frontend implements the modules of pkg/modules that people and the
// standalone meet: the curator with its UI and API, the model registry and the dashboard
// on that API, and for the standalone the embedded servers, the project bootstrap, a
// simulated fleet and simulated annotators.
package frontend

import (
	"context"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/dashboard"
	"github.com/edgeloop/edgeloop/pkg/httpapi"
	"github.com/edgeloop/edgeloop/pkg/modules"
	"github.com/edgeloop/edgeloop/pkg/registry"
)

// dashboardWindow is how far back the dashboard's accuracy at the edge looks.
const dashboardWindow = 10 * time.Second

// Stack is what a running process offers its caller (tests, benchmarks) once the API
// is up and the project seeded.
type Stack struct {
	// API is the UI and API base URL.
	API     string
	Curator *curator.Curator
}

// state is what the frontend modules of one process share.
type state struct {
	// apiHooks mount routes and background work on the curator's API, in setup order.
	apiHooks []func(e curator.Extension) func(ctx context.Context) error
	registry *registry.Registry

	// up is closed once the API listens; api and cur are set then.
	up  chan struct{}
	api string
	cur *curator.Curator
	// seeded is closed once the bootstrap module seeded the project.
	seeded chan struct{}
	// fleetToken is the simulated agents' device token (set before up is closed).
	fleetToken string
	// started, when not nil, is told the Stack once the API is up and seeded.
	started func(*Stack)
}

// Modules returns the frontend's implementations for one process; started, when not
// nil, is called once the API is up (and the project seeded, with the bootstrap module).
func Modules(started func(*Stack)) map[string]modules.Impl {
	s := &state{up: make(chan struct{}), seeded: make(chan struct{}), started: started}
	return map[string]modules.Impl{
		modules.Embedded:   {Setup: setupEmbedded, Run: runEmbedded},
		modules.Curator:    {Run: s.runCurator},
		modules.Registry:   {Setup: s.setupRegistry},
		modules.Dashboard:  {Setup: s.setupDashboard},
		modules.Bootstrap:  {Run: s.runBootstrap},
		modules.Fleet:      {Run: s.runFleet},
		modules.Annotators: {Run: s.runAnnotators},
	}
}

func (s *state) runCurator(ctx context.Context, a *modules.App) error {
	c := a.Config
	tokens, err := httpapi.LoadTokens(c.TokensFile)
	if err != nil {
		return err
	}
	if a.Has(modules.Fleet) {
		if s.fleetToken, err = fleetToken(tokens, c.Bootstrap.Project); err != nil {
			return err
		}
	}
	tc, err := c.TLS.Config()
	if err != nil {
		return err
	}
	hooks := s.apiHooks
	return curator.RunService(ctx, curator.ServiceConfig{Kafka: a.Kafka("edgeloop-curator"), S3: a.S3(), Tokens: tokens,
		Addr: c.HTTPAddr, OpsAddr: c.Curator.OpsAddr, TLS: tc, Group: c.Curator.Group, Intake: c.Curator.Intake, Tick: c.Curator.Tick, Partitions: c.Partitions,
		Ready: func(addr string) {
			s.api = a.Scheme() + "://" + addr
			close(s.up)
			if s.started != nil && !a.Has(modules.Bootstrap) {
				s.started(&Stack{API: s.api, Curator: s.cur})
			}
		},
		Extend: func(e curator.Extension) func(context.Context) error {
			s.cur = e.Curator
			var runs []func(context.Context) error
			for _, h := range hooks {
				if run := h(e); run != nil {
					runs = append(runs, run)
				}
			}
			return func(ctx context.Context) error {
				g, gctx := errgroup.WithContext(ctx)
				for _, run := range runs {
					g.Go(func() error { return run(gctx) })
				}
				return g.Wait()
			}
		}}, a.Log.Named("curator"))
}

// setupRegistry serves the model registry's endpoints on the curator's API. The signing
// key (-key) signs the releases an admin promotes or rolls back; without it those are
// refused.
func (s *state) setupRegistry(a *modules.App) error {
	s.apiHooks = append(s.apiHooks, func(e curator.Extension) func(context.Context) error {
		s.registry = registry.New(e.Curator.Store().S, e.Producer, e.Kafka, a.PublicURL())
		s.registry.Corrupt = e.Curator.Store().Corrupt
		if key, err := a.SigningKey(); err == nil {
			s.registry.Key = key
		} else {
			a.Log.Warn("registry without a signing key: admins cannot promote or roll back releases", zap.Error(err))
		}
		registry.Mount(e.API, s.registry)
		return nil
	})
	return nil
}

// setupDashboard serves the dashboard on the curator's API and follows the devices'
// heartbeats.
func (s *state) setupDashboard(a *modules.App) error {
	s.apiHooks = append(s.apiHooks, func(e curator.Extension) func(context.Context) error {
		t := dashboard.NewTracker(dashboardWindow, a.Log.Named("dashboard"))
		dashboard.Mount(e.API, e.Curator, s.registry, t)
		return func(ctx context.Context) error { return t.Consume(ctx, e.Kafka, a.Config.Dashboard.Group) }
	})
	return nil
}

// waitUp waits until the API listens.
func (s *state) waitUp(ctx context.Context) error {
	select {
	case <-s.up:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
