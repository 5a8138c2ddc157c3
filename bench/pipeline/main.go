// Command pipeline measures how long the loop takes from an approved batch to a model
// on the release topic: the whole standalone stack (embedded servers, curator, retrain)
// in one process, a project seeded with -examples digits — an approved batch that
// trains version 1 from scratch —, then one approved batch of -batch drifted digits,
// which fine-tunes version 2 from version 1 and gates it. Times come from the batch's
// approval and the registry's own records, and print as a table.
//
//	go run -tags openblas ./bench/pipeline -examples 1000 -backend auto
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/dataformat"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/modules"
	"github.com/edgeloop/edgeloop/pkg/modules/frontend"
	"github.com/edgeloop/edgeloop/pkg/modules/headless"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/registry"
)

type options struct {
	examples, batch int
	backend, drift  string
	timeout         time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.examples, "examples", 1000, "seed examples: the dataset version 1 trains on")
	flag.IntVar(&o.batch, "batch", 50, "examples in the approved batch that fine-tunes version 2")
	flag.StringVar(&o.backend, "backend", "auto", "training backend: auto, cpu or cuda")
	flag.StringVar(&o.drift, "drift", "rotation", "drift of the approved batch's digits")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up after")
	flag.Parse()
	log, _ := zap.NewProduction(zap.IncreaseLevel(zap.WarnLevel))
	if err := run(o, log); err != nil {
		fmt.Fprintln(os.Stderr, "bench pipeline:", err)
		os.Exit(1)
	}
}

func run(o options, log *zap.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "bench-pipeline")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ports, err := freePorts(6)
	if err != nil {
		return err
	}
	// The standalone's module table, as `make run` runs it, on free ports.
	fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
	cfg := modules.RegisterFlags(fs, "standalone")
	if err := fs.Parse([]string{"-data-dir", dir, "-mqtt-port", strconv.Itoa(ports[0]), "-kafka-port", strconv.Itoa(ports[1]),
		"-s3-port", strconv.Itoa(ports[2]), "-http-addr", fmt.Sprintf("127.0.0.1:%d", ports[3]),
		"-bridge-ops-addr", fmt.Sprintf("127.0.0.1:%d", ports[4]), "-retrain-ops-addr", fmt.Sprintf("127.0.0.1:%d", ports[5]),
		"-backend", o.backend, "-project", "bench", "-seed", "mnist", "-seed-limit", strconv.Itoa(o.examples), "-fleet", "0",
		"-agent-http-addr", ""}); err != nil {
		return err
	}
	stacks := make(chan *frontend.Stack, 1)
	done := make(chan error, 1)
	impls := modules.Merge(headless.Modules(), frontend.Modules(func(s *frontend.Stack) { stacks <- s }))
	go func() { done <- modules.Run(ctx, cfg, impls, log, modules.Options{}) }()
	var st *frontend.Stack
	select {
	case st = <-stacks:
	case err := <-done:
		return fmt.Errorf("standalone stopped: %w", err)
	}
	defer func() { cancel(); <-done }()
	kcfg := kafkabus.Config{Brokers: []string{fmt.Sprintf("127.0.0.1:%d", ports[1])}, ClientID: "bench-pipeline"}
	reg := registry.New(st.Curator.Store().S, nil, kcfg, st.API)

	fmt.Printf("\nApproved batch → published model, project of %d MNIST digits (%s)\n\n", o.examples, o.backend)
	fmt.Println("| step | dataset | training | engine | approved → stored | approved → released | gate: candidate vs current (test examples) |")
	fmt.Println("|------|--------:|----------|--------|------------------:|--------------------:|--------------------------------------------|")
	if err := measure(ctx, st, reg, 1, "seed import", o.examples); err != nil {
		return err
	}
	if err := importBatch(ctx, st, o); err != nil {
		return err
	}
	return measure(ctx, st, reg, 2, fmt.Sprintf("+%d %s digits", o.batch, o.drift), o.examples+o.batch)
}

// measure waits for version v and prints when it was stored and released, counted from
// the approval of the project's latest approved batch.
func measure(ctx context.Context, st *frontend.Stack, reg *registry.Registry, v int64, what string, examples int) error {
	var ver *registry.Version
	for ver == nil {
		vs, err := reg.Versions(ctx, "bench")
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			return err
		}
		for _, x := range vs {
			if x.Version == v {
				ver = x
			}
		}
		if ver == nil {
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				return fmt.Errorf("waiting for version %d: %w", v, err)
			}
		}
	}
	approved, err := lastApproval(ctx, st)
	if err != nil {
		return err
	}
	released := "not released"
	if ver.Decision.Published {
		for {
			rel, err := reg.Current(ctx, "bench")
			if err == nil && rel.Version == v {
				released = fmt.Sprintf("%.1f s", rel.At.Sub(approved).Seconds())
				break
			}
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return fmt.Errorf("waiting for the release of version %d: %w", v, err)
			}
		}
	}
	kind := "from scratch"
	if ver.Parent > 0 {
		kind = fmt.Sprintf("fine-tune of v%d", ver.Parent)
	}
	d := ver.Decision
	gate := "no test split yet: first model released"
	if d.TestExamples > 0 {
		gate = fmt.Sprintf("%s %.3f vs %.3f (%d): %s", d.Metric, d.Candidate, d.Current, d.TestExamples, strings.Join(d.Reasons, "; "))
	}
	fmt.Printf("| v%d: %s | %d | %s | %s | %.1f s | %s | %s |\n", v, what, examples, kind, ver.Engine,
		ver.CreatedAt.Sub(approved).Seconds(), released, gate)
	return nil
}

// lastApproval is when the project's most recently approved batch was approved.
func lastApproval(ctx context.Context, st *frontend.Stack) (time.Time, error) {
	bs, err := st.Curator.Store().Batches(ctx, "bench")
	if err != nil {
		return time.Time{}, err
	}
	var last time.Time
	for _, b := range bs {
		if b.ApprovedAt != nil && b.ApprovedAt.After(last) {
			last = *b.ApprovedAt
		}
	}
	if last.IsZero() {
		return last, errors.New("no approved batch")
	}
	return last, nil
}

// importBatch approves a batch of drifted digits by importing it (COCO) through the API,
// as an annotation tool exporting its corrections would.
func importBatch(ctx context.Context, st *frontend.Stack, o options) error {
	spec, err := datasets.Parse("mnist:drift=" + o.drift)
	if err != nil {
		return err
	}
	data, err := datasets.Load(spec, "", datasets.Sizes{Train: o.batch, Val: 1, Test: 1}, 99)
	if err != nil {
		return err
	}
	p, err := st.Curator.Store().Project(ctx, "bench")
	if err != nil {
		return err
	}
	var seeds []dataformat.SeedImage
	for i, s := range data.Train {
		seeds = append(seeds, dataformat.SeedImage{ID: fmt.Sprintf("fix-%04d", i), Data: s.Image.EncodePNG(), ContentType: "image/png",
			Width: s.Image.W, Height: s.Image.H, Labels: []project.Label{{Class: p.Classes[s.Label]}}})
	}
	zipData, err := dataformat.SeedArchive(p, seeds)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", st.API+"/api/v1/projects/bench/dataset/import?format=coco", bytes.NewReader(zipData))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer admin-dev-token")
	req.Header.Set("Content-Type", "application/zip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("import of the batch: %s", resp.Status)
	}
	return nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
