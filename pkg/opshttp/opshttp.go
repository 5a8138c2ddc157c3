// Package opshttp serves what every edgeloop service exposes for operations: /healthz
// (the process runs), /readyz (its dependencies answer) and Prometheus /metrics.
package opshttp

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Check reports whether one dependency is usable.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// NewRegistry returns a Prometheus registry with the Go and process collectors; each
// service registers its own metrics on it (no global registry).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Mount adds /healthz, /readyz and /metrics to mux.
func Mount(mux *http.ServeMux, reg prometheus.Gatherer, checks ...Check) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		status, code := map[string]string{}, http.StatusOK
		for _, c := range checks {
			if err := c.Fn(ctx); err != nil {
				status[c.Name], code = err.Error(), http.StatusServiceUnavailable
			} else {
				status[c.Name] = "ok"
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(status)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}

// Timeouts bound how long a connection may take over each part of a request, so that a
// slow or stalled client cannot hold a connection and its handler forever. A handler
// that needs longer (an upload, a download of a whole dataset) extends its own deadline
// with http.ResponseController.
type Timeouts struct {
	// ReadHeader is the time to read a request's headers.
	ReadHeader time.Duration
	// Read is the time to read a whole request, body included.
	Read time.Duration
	// Write is the time from the end of the request's headers to the end of the response.
	Write time.Duration
	// Idle is how long a keep-alive connection waits for its next request.
	Idle time.Duration
}

// DefaultTimeouts are the timeouts of every edgeloop HTTP server.
func DefaultTimeouts() Timeouts {
	return Timeouts{ReadHeader: 10 * time.Second, Read: time.Minute, Write: 2 * time.Minute, Idle: 2 * time.Minute}
}

// Option changes how Serve serves.
type Option func(*options)

type options struct {
	tls      *tls.Config
	timeouts Timeouts
}

// WithTLS serves HTTPS only, with c (nil: plain HTTP).
func WithTLS(c *tls.Config) Option { return func(o *options) { o.tls = c } }

// WithTimeouts replaces DefaultTimeouts.
func WithTimeouts(t Timeouts) Option { return func(o *options) { o.timeouts = t } }

// Serve serves h on addr until ctx ends, then shuts down gracefully. It returns once the
// listener is closed. ready, when not nil, receives the bound address (useful with
// port 0).
func Serve(ctx context.Context, addr string, h http.Handler, log *zap.Logger, ready func(addr string), opts ...Option) error {
	o := options{timeouts: DefaultTimeouts()}
	for _, opt := range opts {
		opt(&o)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	scheme := "http"
	if o.tls != nil {
		ln, scheme = tls.NewListener(ln, o.tls), "https"
	}
	t := o.timeouts
	srv := &http.Server{Handler: h, ReadHeaderTimeout: t.ReadHeader, ReadTimeout: t.Read, WriteTimeout: t.Write, IdleTimeout: t.Idle,
		ErrorLog: zap.NewStdLog(log.Named("http"))}
	if ready != nil {
		ready(ln.Addr().String())
	}
	log.Info("http listening", zap.String("addr", ln.Addr().String()), zap.String("scheme", scheme))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
