// Command pipeline measures how long the loop takes from an approved batch to a model
// on the release topic, and how that time grows with the dataset: the whole standalone
// stack (embedded servers, curator, retrain) in one process, a project seeded with the
// first of -sizes digits — an approved batch that trains version 1 from scratch —,
// then, for each dataset size, the dataset grows to that size (MNIST train digits,
// imported as seeds), the release is brought up to date on it (a one-epoch full
// training), and one approved batch of -batch drifted digits is trained on twice from
// that same release: by the retrain service's default bounded fine-tune (replay: the
// new examples plus a replay sample of the older ones) and by a full retrain (the whole
// train split). Times come from the registry's own records; accuracy is the candidate's
// on held-out drifted and clean MNIST test digits. The gate is set to release every
// candidate, so that release times can be measured.
//
//	go run -tags openblas ./bench/pipeline -sizes 1000,5000,20000,50000
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/dataformat"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/mnist"
	"github.com/edgeloop/edgeloop/pkg/modules"
	"github.com/edgeloop/edgeloop/pkg/modules/frontend"
	"github.com/edgeloop/edgeloop/pkg/modules/headless"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/backend"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/registry"
	"github.com/edgeloop/edgeloop/pkg/retrain"
	"github.com/edgeloop/edgeloop/pkg/train"
)

type options struct {
	sizes          []int
	batch, test    int
	backend, drift string
	modes          string
	timeout        time.Duration
}

func main() {
	var o options
	sizes := flag.String("sizes", "1000", "dataset sizes to measure at, comma-separated (the first seeds version 1)")
	flag.IntVar(&o.batch, "batch", 50, "examples in each approved batch")
	flag.IntVar(&o.test, "test", 1000, "held-out test digits (drifted and clean) the candidates are scored on")
	flag.StringVar(&o.backend, "backend", "auto", "training backend: auto, cpu or cuda")
	flag.StringVar(&o.drift, "drift", "rotation", "drift of the approved batches' digits")
	flag.StringVar(&o.modes, "modes", "replay,full", "trainings after each batch: replay and/or full")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Minute, "give up after")
	flag.Parse()
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 100 || n > 55000 || (len(o.sizes) > 0 && n <= o.sizes[len(o.sizes)-1]) {
			fmt.Fprintf(os.Stderr, "bench pipeline: -sizes %q: want increasing sizes of 100–55,000\n", *sizes)
			os.Exit(2)
		}
		o.sizes = append(o.sizes, n)
	}
	log, _ := zap.NewProduction(zap.IncreaseLevel(zap.WarnLevel))
	if err := run(o, log); err != nil {
		fmt.Fprintln(os.Stderr, "bench pipeline:", err)
		os.Exit(1)
	}
}

// bench is one run's stack and its held-out data.
type bench struct {
	o      options
	st     *frontend.Stack
	reg    *registry.Registry
	be     backend.Choice
	mnist  *mnist.Set // MNIST train digits: seeds and batches
	d      drift.Preset
	rot    []train.Sample // held-out drifted test digits
	clean  []train.Sample // the same digits undrifted
	seeded int            // seed digits imported so far
	fixes  int            // batch digits imported so far
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
	b := &bench{o: o}
	trainSet, testSet, err := mnist.Load("")
	if err != nil {
		return err
	}
	if b.d, err = drift.Get(o.drift); err != nil {
		return err
	}
	b.mnist = trainSet
	b.rot = datasets.Digits(testSet, 0, o.test, "rot", b.d, 7)
	b.clean = datasets.Digits(testSet, 0, o.test, "clean", drift.Preset{Name: drift.None}, 7)
	if b.be, err = backend.Select(o.backend, log); err != nil {
		return err
	}
	// The standalone's module table, as `make run` runs it, on free ports.
	fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
	cfg := modules.RegisterFlags(fs, "standalone")
	if err := fs.Parse([]string{"-data-dir", dir, "-mqtt-port", strconv.Itoa(ports[0]), "-kafka-port", strconv.Itoa(ports[1]),
		"-s3-port", strconv.Itoa(ports[2]), "-http-addr", fmt.Sprintf("127.0.0.1:%d", ports[3]),
		"-bridge-ops-addr", fmt.Sprintf("127.0.0.1:%d", ports[4]), "-retrain-ops-addr", fmt.Sprintf("127.0.0.1:%d", ports[5]), "-curator-ops-addr", "",
		"-backend", o.backend, "-project", "bench", "-seed", "mnist", "-seed-limit", strconv.Itoa(o.sizes[0]), "-fleet", "0",
		"-agent-http-addr", ""}); err != nil {
		return err
	}
	stacks := make(chan *frontend.Stack, 1)
	done := make(chan error, 1)
	impls := modules.Merge(headless.Modules(), frontend.Modules(func(s *frontend.Stack) { stacks <- s }))
	go func() { done <- modules.Run(ctx, cfg, impls, log, modules.Options{}) }()
	select {
	case b.st = <-stacks:
	case err := <-done:
		return fmt.Errorf("standalone stopped: %w", err)
	}
	defer func() { cancel(); <-done }()
	kcfg := kafkabus.Config{Brokers: []string{fmt.Sprintf("127.0.0.1:%d", ports[1])}, ClientID: "bench-pipeline"}
	b.reg = registry.New(b.st.Curator.Store().S, nil, kcfg, b.st.API)
	b.seeded = o.sizes[0]
	start := time.Now()

	v1, err := b.waitVersion(ctx, 1)
	if err != nil {
		return err
	}
	approved, err := lastApproval(ctx, b.st)
	if err != nil {
		return err
	}
	fmt.Printf("\nVersion 1: %d MNIST digits, from scratch, %s: approved → released %.1f s\n", o.sizes[0], v1.Engine, v1.CreatedAt.Sub(approved).Seconds())
	// From here on trainings run on request, each one the moment its batch is approved,
	// and every candidate is released (the bench measures time, not the gate).
	var replay int
	if _, err := b.st.Curator.Store().UpdateProject(ctx, "bench", func(p *project.Project) error {
		p.Retrain.Trigger = "manual"
		p.Retrain.Require, p.Retrain.Margin, p.Retrain.MinTest, p.Retrain.PerClass = "not_worse", 1, 1, "off"
		replay = p.Retrain.Replay
		return nil
	}); err != nil {
		return err
	}
	fmt.Printf("\nApproved batch of %d %s digits → released model, by dataset size: the replay fine-tune (new examples + a replay sample "+
		"of %d, half recent, half class-balanced) against a full retrain on the whole train split, both from the same release; accuracy on %d held-out test digits, "+
		"drifted and clean\n\n", o.batch, o.drift, replay, o.test)
	fmt.Println("| dataset | training | trained on | epochs | approved → released | drifted acc | clean acc |")
	fmt.Println("|--------:|----------|-----------:|-------:|--------------------:|------------:|----------:|")
	for _, size := range o.sizes {
		if err := b.at(ctx, size); err != nil {
			return err
		}
	}
	fmt.Printf("\n%s; engine %s; %s in all\n", strings.Join(os.Args[1:], " "), v1.Engine, time.Since(start).Round(time.Second))
	return nil
}

// at measures one dataset size: grow the dataset, bring the release up to date on it,
// then approve one batch and train on it in each mode from that release.
func (b *bench) at(ctx context.Context, size int) error {
	if size > b.seeded {
		t := time.Now()
		for b.seeded < size {
			n := min(size-b.seeded, 5000)
			if err := b.importDigits(ctx, fmt.Sprintf("seed-%05d", b.seeded), b.seeded, n, false); err != nil {
				return err
			}
			b.seeded += n
		}
		// The release learns the grown dataset, as it would have batch by batch.
		if err := b.setEpochs(ctx, 1); err != nil {
			return err
		}
		v, err := b.train(ctx, retrain.ModeFull)
		if err != nil {
			return err
		}
		if err := b.setEpochs(ctx, 0); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "  %d examples: imported and learnt by v%d (one epoch) in %.0f s\n", size, v.Version, time.Since(t).Seconds())
	}
	base, err := b.reg.Current(ctx, "bench")
	if err != nil {
		return err
	}
	if err := b.importDigits(ctx, fmt.Sprintf("fix-%05d", b.fixes), 55000+b.fixes, b.o.batch, true); err != nil {
		return err
	}
	b.fixes += b.o.batch
	for i, mode := range strings.Split(b.o.modes, ",") {
		if i > 0 { // the next mode starts from the same release
			if err := b.post(ctx, fmt.Sprintf("/api/v1/projects/bench/models/%d/rollback", base.Version), nil); err != nil {
				return err
			}
		}
		since := time.Now()
		if i == 0 {
			if since, err = lastApproval(ctx, b.st); err != nil {
				return err
			}
		}
		v, err := b.train(ctx, mode)
		if err != nil {
			return err
		}
		rel, err := b.waitRelease(ctx, v.Version)
		if err != nil {
			return err
		}
		var m retrain.Metrics
		if err := b.reg.Metrics(ctx, "bench", v.Version, &m); err != nil {
			return err
		}
		model, err := b.reg.Model(ctx, "bench", v.Version)
		if err != nil {
			return err
		}
		rot, err := b.accuracy(model, b.rot)
		if err != nil {
			return err
		}
		clean, err := b.accuracy(model, b.clean)
		if err != nil {
			return err
		}
		on := fmt.Sprintf("%d (%d new + %d)", v.Examples["train"], v.Examples["new"], v.Examples["replayed"])
		if v.Mode != retrain.ModeReplay {
			on = fmt.Sprint(v.Examples["train"])
		}
		from := "approved"
		if i > 0 {
			from = "requested"
		}
		fmt.Printf("| %d | %s of v%d | %s | %d | %.1f s (%s) | %.3f | %.3f |\n", size, v.Mode, v.Parent, on, m.EpochsRun,
			rel.Sub(since).Seconds(), from, rot, clean)
	}
	return nil
}

// train asks for a training in mode and waits for its version.
func (b *bench) train(ctx context.Context, mode string) (*registry.Version, error) {
	vs, err := b.reg.Versions(ctx, "bench")
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{"mode": mode})
	if err := b.post(ctx, "/api/v1/projects/bench/retrain", body); err != nil {
		return nil, err
	}
	return b.waitVersion(ctx, int64(len(vs))+1)
}

// setEpochs sets the project's most epochs per training (0: the default).
func (b *bench) setEpochs(ctx context.Context, n int) error {
	_, err := b.st.Curator.Store().UpdateProject(ctx, "bench", func(p *project.Project) error {
		p.Retrain.Epochs = n
		return nil
	})
	return err
}

// accuracy of a model on set.
func (b *bench) accuracy(m *artifact.Model, set []train.Sample) (float64, error) {
	e, err := b.be.Factory(nn.EngineConfig{Arch: m.Header.Arch, Params: m.Params})
	if err != nil {
		return 0, err
	}
	defer e.Close()
	ev, err := train.Evaluate(e, m.Header.Arch, m.Header.Classes, set, 64)
	return ev.Headline(), err
}

// waitVersion waits for version v to be stored.
func (b *bench) waitVersion(ctx context.Context, v int64) (*registry.Version, error) {
	for {
		ver, err := b.reg.Version(ctx, "bench", v)
		if err == nil {
			return ver, nil
		}
		if !errors.Is(err, registry.ErrNotFound) {
			return nil, err
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, fmt.Errorf("waiting for version %d: %w", v, err)
		}
	}
}

// waitRelease waits for version v to be the release and returns when it became so.
func (b *bench) waitRelease(ctx context.Context, v int64) (time.Time, error) {
	for {
		rel, err := b.reg.Current(ctx, "bench")
		if err == nil && rel.Version == v {
			return rel.At, nil
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return time.Time{}, fmt.Errorf("waiting for the release of version %d: %w", v, err)
		}
	}
}

// post sends an admin request to the API.
func (b *bench) post(ctx context.Context, path string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, "POST", b.st.API+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer admin-dev-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST %s: %s %s", path, resp.Status, msg)
	}
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

// importDigits approves n MNIST train digits from index from by importing them (COCO)
// through the API, as an annotation tool exporting its corrections would: seed digits
// pinned to train, or drifted corrections that the split rule places.
func (b *bench) importDigits(ctx context.Context, prefix string, from, n int, drifted bool) error {
	p, err := b.st.Curator.Store().Project(ctx, "bench")
	if err != nil {
		return err
	}
	var seeds []dataformat.SeedImage
	for i := from; i < from+n; i++ {
		im := raster.FromBytes(mnist.Side, mnist.Side, b.mnist.Images[i])
		split := "train"
		if drifted {
			im, split = b.d.Classification(im, rand.New(rand.NewPCG(99, uint64(i)))), ""
		}
		seeds = append(seeds, dataformat.SeedImage{ID: fmt.Sprintf("%s-%05d", prefix, i-from), Data: im.EncodePNG(), ContentType: "image/png",
			Width: im.W, Height: im.H, Split: split, Labels: []project.Label{{Class: p.Classes[b.mnist.Labels[i]]}}})
	}
	zipData, err := dataformat.SeedArchive(p, seeds)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", b.st.API+"/api/v1/projects/bench/dataset/import?format=coco", bytes.NewReader(zipData))
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
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("import of %d digits: %s %s", n, resp.Status, msg)
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
