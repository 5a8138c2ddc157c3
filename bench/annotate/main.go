// Command annotate measures annotator throughput in the real UI: a curator on the real
// Kafka and MinIO, batches of 50 digits, and pkg/curator/e2e/annotate.mjs driving
// Chromium by keyboard only at 1280x720 (claim with N, a class key and Enter per
// picture typed without waiting for the page, one item changed and revisited, one
// skipped, Ctrl+Enter to submit, then item-by-item review). It prints pictures per
// minute for scripted input and the key-to-next-picture latency (p50, p99): the time
// from the key event to the frame that shows the next picture.
//
//	go run ./bench/annotate -kafka 127.0.0.1:19092 -s3 127.0.0.1:19000 -runs 3
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/internal/fixture"
	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/httpapi"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/objstore/s3store"
	"github.com/edgeloop/edgeloop/pkg/project"
)

type options struct {
	kafka, s3, accessKey, secretKey, chromium, e2e string
	runs, pictures, pace                           int
}

// run is what the browser script reports of one batch.
type run struct {
	Groups  [][]string `json:"groups"`
	KeyMS   []float64  `json:"key_ms"`
	Seconds float64    `json:"seconds"`
	Typed   struct {
		Pictures int     `json:"pictures"`
		Seconds  float64 `json:"seconds"`
	} `json:"typed"`
	Errors []string `json:"errors"`
}

func main() {
	var o options
	flag.StringVar(&o.kafka, "kafka", "127.0.0.1:19092", "Kafka broker")
	flag.StringVar(&o.s3, "s3", "127.0.0.1:19000", "S3 endpoint (MinIO)")
	flag.StringVar(&o.accessKey, "s3-access-key", "edgeloop", "S3 access key")
	flag.StringVar(&o.secretKey, "s3-secret-key", "edgeloop-secret", "S3 secret key")
	flag.StringVar(&o.chromium, "chromium", "/usr/bin/chromium", "Chromium binary")
	flag.StringVar(&o.e2e, "e2e", "pkg/curator/e2e", "directory of annotate.mjs and its node_modules")
	flag.IntVar(&o.runs, "runs", 3, "batches to correct, one browser session each")
	flag.IntVar(&o.pictures, "pictures", 50, "pictures per batch")
	flag.IntVar(&o.pace, "pace-ms", 400, "pause after each picture in the extra paced run, as a fast person takes (0: no paced run)")
	flag.Parse()
	if err := bench(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench annotate:", err)
		os.Exit(1)
	}
}

func bench(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	tag := fmt.Sprintf("bench%d", time.Now().UnixNano()%1e9)
	kcfg := kafkabus.Config{Brokers: []string{o.kafka}, ClientID: "bench-annotate", TopicPrefix: tag + "."}
	s3 := s3store.Config{Endpoint: o.s3, Bucket: tag, AccessKey: o.accessKey, SecretKey: o.secretKey}
	tokens := &httpapi.Tokens{Tokens: map[string]httpapi.User{
		"annotator-bench": {Name: "annie", Roles: []string{httpapi.RoleAnnotator}},
		"reviewer-bench":  {Name: "rex", Roles: []string{httpapi.RoleReviewer}},
		"admin-bench":     {Name: "ada", Roles: []string{httpapi.RoleAdmin}},
	}}
	log, _ := zap.NewProduction(zap.IncreaseLevel(zap.WarnLevel))
	addr := make(chan string, 1)
	done := make(chan error, 1)
	svcCtx, stop := context.WithCancel(ctx)
	go func() {
		done <- curator.RunService(svcCtx, curator.ServiceConfig{Kafka: kcfg, S3: s3, Tokens: tokens, Addr: "127.0.0.1:0",
			Tick: 200 * time.Millisecond, Ready: func(a string) { addr <- a }}, log)
	}()
	defer func() { stop(); <-done }()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		return fmt.Errorf("curator: %w", err)
	}
	prod, err := kafkabus.NewProducer(kcfg, kafkabus.ProducerOptions{})
	if err != nil {
		return err
	}
	defer prod.Close()
	var runs []run
	var paced run
	total := o.runs
	if o.pace > 0 {
		total++ // the last run is paced
	}
	for r := 0; r < total; r++ {
		pid := fmt.Sprintf("annotate-%d", r)
		p := project.Project{ID: pid, Task: "classify", Classes: []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}}
		p.Batch.Min, p.Batch.Max, p.Batch.MaxWait = o.pictures, o.pictures, config.Duration(time.Hour)
		if err := call(ctx, base, "admin-bench", "POST", "/api/v1/projects", p, nil); err != nil {
			return fmt.Errorf("project %s: %w", pid, err)
		}
		truth := map[string][]project.Label{}
		var msgs []kafka.Message
		rng := rand.New(rand.NewPCG(uint64(r), 7))
		for i := 0; i < o.pictures; i++ {
			ex := fixture.Example(pid, fmt.Sprintf("cam-%d", i%3), fmt.Sprintf("%s-%03d", pid, i))
			ex.Image.Data = fixture.JPEG(28, 28, uint64(1000*r+i))
			ex.Image.ContentType = "image/jpeg"
			ex.Predictions[0].ClassName = fmt.Sprint(rng.IntN(10))
			truth[ex.Id] = []project.Label{{Class: fmt.Sprint(rng.IntN(10))}}
			b, _ := proto.Marshal(ex)
			msgs = append(msgs, kafka.Message{Topic: kcfg.Topic(contract.TopicExamples), Key: []byte(pid), Value: b})
		}
		if err := prod.Produce(ctx, msgs...); err != nil {
			return err
		}
		if err := waitReady(ctx, base, pid); err != nil {
			return err
		}
		pace := 0
		if r == o.runs {
			pace = o.pace
		}
		res, err := browse(ctx, o, base, pid, truth, pace)
		if err != nil {
			return fmt.Errorf("run %d: %w", r, err)
		}
		if pace > 0 {
			paced = res
		} else {
			runs = append(runs, res)
		}
	}
	report(os.Stdout, runs, paced, o.pace)
	return nil
}

func waitReady(ctx context.Context, base, pid string) error {
	for {
		var list []curator.BatchSummary
		if err := call(ctx, base, "reviewer-bench", "GET", "/api/v1/projects/"+pid+"/batches?state=ready", nil, &list); err != nil {
			return err
		}
		if len(list) == 1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no ready batch in project %s: %w", pid, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func browse(ctx context.Context, o options, base, pid string, truth map[string][]project.Label, pace int) (run, error) {
	tj, _ := json.Marshal(truth)
	out, err := os.MkdirTemp("", "bench-annotate")
	if err != nil {
		return run{}, err
	}
	defer os.RemoveAll(out)
	dir, _ := filepath.Abs(o.e2e)
	cmd := exec.CommandContext(ctx, "node", "annotate.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BASE="+base, "ANNOTATOR=annotator-bench", "REVIEWER=reviewer-bench", "PROJECT="+pid,
		"TASK=classify", "TRUTH="+string(tj), "OUT="+out, "CHROMIUM="+o.chromium, fmt.Sprintf("PACE_MS=%d", pace))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	data, err := cmd.Output()
	if err != nil {
		return run{}, fmt.Errorf("browser: %w\n%s", err, stderr.Bytes())
	}
	var res run
	if err := json.Unmarshal(data, &res); err != nil {
		return run{}, fmt.Errorf("browser output %q: %w", data, err)
	}
	if len(res.Errors) > 0 {
		return run{}, fmt.Errorf("page errors: %v", res.Errors)
	}
	return res, nil
}

func report(w io.Writer, runs []run, paced run, pace int) {
	var keys []float64
	var pictures, typed int
	var seconds, typedSeconds float64
	for _, r := range runs {
		keys = append(keys, r.KeyMS...)
		pictures += len(r.Groups)
		seconds += r.Seconds
		typed += r.Typed.Pictures
		typedSeconds += r.Typed.Seconds
	}
	fmt.Fprintf(w, "| annotation UI, Chromium 1280x720, keyboard only | %d batches of %d |\n|---|---|\n", len(runs), pictures/max(1, len(runs)))
	fmt.Fprintf(w, "| pictures per minute, whole batch (claim → submitted, with one revisit and one skip) | %.0f |\n", float64(pictures)*60/seconds)
	fmt.Fprintf(w, "| pictures per minute, class key + Enter typed without pauses | %.0f |\n", float64(typed)*60/typedSeconds)
	p50, p99 := quantiles(keys)
	fmt.Fprintf(w, "| key → next picture painted, typed without pauses, p50 / p99 (%d keys) | %.0f ms / %.0f ms |\n", len(keys), p50, p99)
	if pace > 0 {
		p50, p99 = quantiles(paced.KeyMS)
		fmt.Fprintf(w, "| key → next picture painted, %d ms per picture, p50 / p99 (%d keys) | %.0f ms / %.0f ms |\n", pace, len(paced.KeyMS), p50, p99)
	}
}

// quantiles are the p50 and p99 of xs.
func quantiles(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	xs = append([]float64(nil), xs...)
	sort.Float64s(xs)
	q := func(p float64) float64 { return xs[min(len(xs)-1, int(p*float64(len(xs))))] }
	return q(0.5), q(0.99)
}

func call(ctx context.Context, base, token, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
