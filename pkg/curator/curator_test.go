package curator_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgeloop/edgeloop/internal/servertest"
	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/httpapi"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/objstore/s3store"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/selection"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

var tokens = &httpapi.Tokens{Tokens: map[string]httpapi.User{
	"annotator-token-1": {Name: "annie", Roles: []string{httpapi.RoleAnnotator}, Projects: []string{httpapi.AllProjects}},
	"annotator-token-2": {Name: "bob", Roles: []string{httpapi.RoleAnnotator}, Projects: []string{httpapi.AllProjects}},
	"reviewer-token-1":  {Name: "rex", Roles: []string{httpapi.RoleReviewer}, Projects: []string{httpapi.AllProjects}},
	"admin-token-00001": {Name: "ada", Roles: []string{httpapi.RoleAdmin}, Projects: []string{httpapi.AllProjects}},
}}

type env struct {
	kafka kafkabus.Config
	s3    s3store.Config
}

func newEnv(t *testing.T) env {
	k := servertest.Kafka(t)
	k.TopicPrefix = "t" + servertest.RandomID(8) + "."
	return env{kafka: k, s3: servertest.S3(t)}
}

// start runs a curator service, with extend's routes when given, until the test ends
// and returns its base URL.
func (e env) start(t *testing.T, group string, extend ...func(curator.Extension) func(context.Context) error) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- curator.RunService(ctx, curator.ServiceConfig{Kafka: e.kafka, S3: e.s3, Tokens: tokens, Addr: "127.0.0.1:0",
			Group: group, Tick: 200 * time.Millisecond, Ready: func(a string) { addr <- a }, Extend: extension(extend)}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("curator: %v", err)
		}
	})
	select {
	case a := <-addr:
		return "http://" + a
	case err := <-done:
		t.Fatalf("curator did not start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("curator did not start in time")
	}
	return ""
}

// extension is the first of extend, or nil.
func extension(extend []func(curator.Extension) func(context.Context) error) func(curator.Extension) func(context.Context) error {
	if len(extend) == 0 {
		return nil
	}
	return extend[0]
}

// call makes an API request and decodes the JSON answer into out.
func call(t *testing.T, base, token, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if b, ok := body.([]byte); ok {
		rd = bytes.NewReader(b)
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if bp, ok := out.(*[]byte); ok {
			*bp = data
		} else if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

func createProject(t *testing.T, base, id, task string, mod func(p *project.Project)) {
	p := project.Project{ID: id, Task: task, Classes: []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}}
	p.Batch.MaxWait = config.Duration(time.Hour)
	p.Batch.Pool, p.Batch.Select = 1, selection.Oldest // a batch as soon as Max wait, in arrival order
	if mod != nil {
		mod(&p)
	}
	var out map[string]any
	if code := call(t, base, "admin-token-00001", "POST", "/api/v1/projects", p, &out); code != 201 {
		t.Fatalf("create project: %d %v", code, out)
	}
}

// example builds an example with a distinct noisy image and a known true class.
func example(pid string, i int, task edgeloopv1.Task) (*edgeloopv1.Example, string) {
	r := rand.New(rand.NewPCG(uint64(i), 42))
	im := raster.New(28, 28)
	for j := range im.Pix {
		im.Pix[j] = r.Float32()
	}
	truth := fmt.Sprint(i % 10)
	pred := fmt.Sprint((i + r.IntN(2)) % 10)
	ex := &edgeloopv1.Example{
		Id: fmt.Sprintf("ex-%04d", i), Project: pid, Device: fmt.Sprintf("cam-%d", i%3), CapturedAt: timestamppb.Now(),
		Image: &edgeloopv1.Image{Data: im.EncodePNG(), ContentType: "image/png", Width: 28, Height: 28}, Task: task, ModelVersion: 1,
		Predictions: []*edgeloopv1.Prediction{{ClassName: pred, Confidence: 0.3 + 0.5*r.Float32()}},
		Reasons: []*edgeloopv1.SamplingReason{{Kind: []edgeloopv1.SamplingKind{edgeloopv1.SamplingKind_SAMPLING_KIND_CLOSE_TO_THRESHOLD,
			edgeloopv1.SamplingKind_SAMPLING_KIND_RANDOM, edgeloopv1.SamplingKind_SAMPLING_KIND_OPERATOR_FLAGGED}[i%3], Strategy: "s"}},
		SimulationTruth: &edgeloopv1.Annotation{Labels: []*edgeloopv1.Label{{ClassName: truth}}},
	}
	if task == edgeloopv1.Task_TASK_DETECT {
		ex.Predictions[0].Box = &edgeloopv1.Box{XMin: .1, YMin: .1, XMax: .5, YMax: .6}
	}
	return ex, truth
}

func produce(t *testing.T, e env, exs ...*edgeloopv1.Example) {
	t.Helper()
	p, err := kafkabus.NewProducer(e.kafka, kafkabus.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var msgs []kafka.Message
	for _, ex := range exs {
		b, _ := proto.Marshal(ex)
		msgs = append(msgs, kafka.Message{Topic: e.kafka.Topic(contract.TopicExamples), Key: []byte(ex.Project), Value: b})
	}
	for len(msgs) > 0 {
		n := min(100, len(msgs))
		if err := p.Produce(context.Background(), msgs[:n]...); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[n:]
	}
}

// placement reports where every example went: batch id or "open".
func placement(t *testing.T, base, pid string) map[string][]string {
	t.Helper()
	var list []curator.BatchSummary
	call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/"+pid+"/batches", nil, &list)
	where := map[string][]string{}
	for _, s := range list {
		var b curator.BatchView
		if s.ID == "open" {
			continue
		}
		var raw []byte
		if code := call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/"+pid+"/batches/"+s.ID, nil, &raw); code != http.StatusOK {
			t.Fatalf("batch %s of project %s, listed: GET answers %d %s", s.ID, pid, code, raw)
		}
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		for _, it := range b.Items {
			where[it.ExampleID] = append(where[it.ExampleID], s.ID)
		}
	}
	return where
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func openCount(t *testing.T, base, pid string) int {
	var list []curator.BatchSummary
	call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/"+pid+"/batches?state=open", nil, &list)
	if len(list) == 0 {
		return 0
	}
	return list[0].Examples
}

// TestBatchesApprovalsSplitsExports: 520 examples in → batches of 30–50 → every batch
// annotated, submitted and approved → the dataset's splits obey their caps →
// BatchApproved on Kafka → exports in four formats → COCO and YOLO imports give back the
// same annotations and splits.
func TestBatchesApprovalsSplitsExports(t *testing.T) {
	e := newEnv(t)
	base := e.start(t, "curator")
	createProject(t, base, "digits", "classify", func(p *project.Project) { p.Split.ValCap, p.Split.TestCap = 20, 20 })
	truth := produceClassify(t, e, "digits", 0, 520, nil)
	var where map[string][]string
	waitFor(t, "520 examples placed", 120*time.Second, func() bool {
		where = placement(t, base, "digits")
		return len(where)+openCount(t, base, "digits") >= 520
	})
	if open := openCount(t, base, "digits"); len(where) != 500 || open != 20 {
		t.Fatalf("%d in batches, %d open; want 500 in 10 batches of 50 and 20 waiting", len(where), open)
	}
	var list []curator.BatchSummary
	call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/digits/batches?state=ready", nil, &list)
	for _, b := range list {
		if b.Examples < 30 || b.Examples > 50 {
			t.Errorf("batch %s has %d examples", b.ID, b.Examples)
		}
		// Balanced: 10 predicted classes and 3 reasons, 50 examples: no class over 9.
		for c, n := range b.Classes {
			if n > 9 {
				t.Errorf("batch %s holds %d examples predicted %s: not balanced (%v)", b.ID, n, c, b.Classes)
			}
		}
	}
	if len(list) != 10 {
		t.Fatalf("%d ready batches, want 10", len(list))
	}
	for id, bs := range where {
		if len(bs) != 1 {
			t.Fatalf("example %s is in batches %v", id, bs)
		}
	}
	// A shorter max wait closes the open batch once it holds at least min (30): not yet.
	for _, s := range list {
		annotateAndApprove(t, base, "digits", s.ID, truth)
	}
	var ds project.DatasetView
	call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/digits/dataset", nil, &ds)
	if ds.Total != 500 || ds.BySplit["val"] != 20 || ds.BySplit["test"] != 20 || ds.BySplit["train"] != 460 {
		t.Fatalf("dataset %+v: want 500 = 460/20/20 (caps of 20)", ds)
	}
	// Approving again changes nothing: splits are pinned.
	var again map[string]any
	if code := call(t, base, "reviewer-token-1", "POST", "/api/v1/projects/digits/batches/"+list[0].ID+"/approve", nil, &again); code != 409 {
		t.Fatalf("approving an approved batch: %d %v", code, again)
	}
	checkApprovedEvents(t, e, "digits", 10, 500)

	for _, format := range []string{"coco", "yolo", "voc", "labelstudio"} {
		var zipData []byte
		if code := call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/digits/dataset/export?format="+format, nil, &zipData); code != 200 {
			t.Fatalf("export %s: %d %s", format, code, zipData)
		}
		zr, err := zip.NewReader(bytes.NewReader(zipData), int64(len(zipData)))
		if err != nil {
			t.Fatalf("export %s is no zip: %v", format, err)
		}
		images := 0
		for _, f := range zr.File {
			if strings.HasSuffix(f.Name, ".png") {
				images++
			}
		}
		if images != 500 {
			t.Errorf("export %s holds %d images, want 500", format, images)
		}
		if format == "coco" || format == "yolo" {
			roundTrip(t, base, format, zipData)
		}
	}
}

func annotateAndApprove(t *testing.T, base, pid, id string, truth map[string]string) {
	t.Helper()
	var b curator.BatchView
	if code := call(t, base, "annotator-token-1", "POST", "/api/v1/projects/"+pid+"/batches/"+id+"/claim", nil, &b); code != 200 {
		t.Fatalf("claim %s: %d", id, code)
	}
	for _, it := range b.Items {
		var out map[string]any
		body := map[string]any{"labels": []project.Label{{Class: truth[it.ExampleID]}}}
		if code := call(t, base, "annotator-token-1", "PUT", "/api/v1/projects/"+pid+"/batches/"+id+"/items/"+it.ExampleID, body, &out); code != 200 {
			t.Fatalf("save: %d %v", code, out)
		}
	}
	var out map[string]any
	if code := call(t, base, "annotator-token-1", "POST", "/api/v1/projects/"+pid+"/batches/"+id+"/submit", nil, &out); code != 200 {
		t.Fatalf("submit: %d %v", code, out)
	}
	if code := call(t, base, "reviewer-token-1", "POST", "/api/v1/projects/"+pid+"/batches/"+id+"/approve", nil, &out); code != 200 {
		t.Fatalf("approve: %d %v", code, out)
	}
}

func checkApprovedEvents(t *testing.T, e env, pid string, want, wantAdded int) {
	t.Helper()
	seen := map[string]bool{}
	added := 0
	if !servertest.Collect(t, e.kafka, contract.TopicBatchesApproved, 30*time.Second, func(m kafka.Message) {
		ev := &edgeloopv1.BatchApproved{}
		if err := proto.Unmarshal(m.Value, ev); err != nil || ev.Project != pid || string(m.Key) != pid {
			t.Fatalf("bad event %v %v", ev, err)
		}
		if !seen[ev.BatchId] {
			seen[ev.BatchId] = true
			for _, n := range ev.AddedBySplit {
				added += int(n)
			}
		}
	}, func() bool { return len(seen) >= want }) {
		t.Fatalf("BatchApproved events: %d of %d within 30 s", len(seen), want)
	}
	if added != wantAdded {
		t.Fatalf("events add %d examples, want %d", added, wantAdded)
	}
}

// roundTrip imports an export into a fresh project and compares annotations and splits,
// keyed by image content.
func roundTrip(t *testing.T, base, format string, zipData []byte) {
	t.Helper()
	pid := "rt-" + format
	createProject(t, base, pid, "classify", nil)
	var out map[string]any
	if code := call(t, base, "admin-token-00001", "POST", "/api/v1/projects/"+pid+"/dataset/import?format="+format, zipData, &out); code != 201 {
		t.Fatalf("import %s: %d %v", format, code, out)
	}
	var a, b project.DatasetView
	call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/digits/dataset", nil, &a)
	call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/"+pid+"/dataset", nil, &b)
	if fmt.Sprint(a.BySplit, a.ByClass) != fmt.Sprint(b.BySplit, b.ByClass) {
		t.Fatalf("%s round trip: %v %v, want %v %v", format, b.BySplit, b.ByClass, a.BySplit, a.ByClass)
	}
	// And per image: export both as COCO and compare (file name → labels) sets.
	var again []byte
	call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/"+pid+"/dataset/export?format=coco", nil, &again)
	orig := []byte{}
	call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/digits/dataset/export?format=coco", nil, &orig)
	if x, y := cocoLabels(t, orig), cocoLabels(t, again); x != y {
		t.Fatalf("%s round trip changed annotations", format)
	}
}

// cocoLabels summarises a COCO export as sorted "split/file:class" lines.
func cocoLabels(t *testing.T, data []byte) string {
	zr, _ := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	var lines []string
	for _, f := range zr.File {
		if filepath.Base(f.Name) != "annotations.json" {
			continue
		}
		rc, _ := f.Open()
		var cf struct {
			Images []struct {
				ID       int    `json:"id"`
				FileName string `json:"file_name"`
			} `json:"images"`
			Annotations []struct {
				ImageID    int       `json:"image_id"`
				CategoryID int       `json:"category_id"`
				BBox       []float64 `json:"bbox"`
			} `json:"annotations"`
		}
		if err := json.NewDecoder(rc).Decode(&cf); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		names := map[int]string{}
		for _, im := range cf.Images {
			names[im.ID] = im.FileName
		}
		for _, a := range cf.Annotations {
			lines = append(lines, fmt.Sprintf("%s/%s:%d:%v", filepath.Dir(f.Name), names[a.ImageID], a.CategoryID, a.BBox))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestTwoCuratorsNeverDoubleAssign: two curators in different consumer groups both
// ingest every example of one project at once; CAS on the ledger must still put each
// example in exactly one batch.
func TestTwoCuratorsNeverDoubleAssign(t *testing.T) {
	e := newEnv(t)
	base := e.start(t, "curator-a")
	e.start(t, "curator-b")
	createProject(t, base, "race", "classify", func(p *project.Project) { p.Batch.Min, p.Batch.Max = 30, 40 })
	produceClassify(t, e, "race", 0, 400, nil)
	var where map[string][]string
	waitFor(t, "400 examples placed", 120*time.Second, func() bool {
		where = placement(t, base, "race")
		return len(where) == 400
	})
	for id, bs := range where {
		if len(bs) != 1 {
			t.Fatalf("example %s assigned to %v", id, bs)
		}
	}
}

// TestKilledMidStream: the curator binary is SIGKILLed while ingesting and started
// again; every example ends up queued exactly once.
func TestKilledMidStream(t *testing.T) {
	e := newEnv(t)
	bin := servertest.Build(t, t.TempDir(), "github.com/edgeloop/edgeloop/services/curator")
	tokFile := filepath.Join(t.TempDir(), "tokens.json")
	tb, _ := json.Marshal(tokens)
	os.WriteFile(tokFile, tb, 0o600)
	addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(20000))
	start := func() *exec.Cmd {
		args := append(servertest.KafkaArgs(e.kafka), servertest.S3Args(e.s3)...)
		cmd := exec.Command(bin, append([]string{"-http-addr", addr, "-curator-ops-addr", "", "-tokens", tokFile, "-tick", "200ms", "-log-level", "warn"}, args...)...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	cmd := start()
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	base := "http://" + addr
	waitFor(t, "curator up", 60*time.Second, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	createProject(t, base, "crash", "classify", func(p *project.Project) { p.Batch.Min, p.Batch.Max = 30, 50 })
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); produceClassify(t, e, "crash", 0, 300, nil) }()
	waitFor(t, "ingestion under way", 60*time.Second, func() bool { return len(placement(t, base, "crash"))+openCount(t, base, "crash") > 40 })
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	cmd = start()
	waitFor(t, "curator back", 60*time.Second, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	wg.Wait()
	var where map[string][]string
	waitFor(t, "300 examples placed after the crash", 120*time.Second, func() bool {
		where = placement(t, base, "crash")
		return len(where)+openCount(t, base, "crash") >= 300
	})
	if n := len(where) + openCount(t, base, "crash"); n != 300 {
		t.Fatalf("%d examples queued, want 300 (no loss, no double queueing)", n)
	}
	for id, bs := range where {
		if len(bs) != 1 {
			t.Fatalf("example %s assigned to %v", id, bs)
		}
	}
}

// TestMalformedRequests: every bad request gets a 4xx with a JSON error and nothing
// changes.
func TestMalformedRequests(t *testing.T) {
	e := newEnv(t)
	base := e.start(t, "curator")
	createProject(t, base, "bad", "detect", func(p *project.Project) { p.Batch.Min, p.Batch.Max = 1, 2 })
	var exs []*edgeloopv1.Example
	for i := 0; i < 2; i++ {
		ex, _ := example("bad", i, edgeloopv1.Task_TASK_DETECT)
		exs = append(exs, ex)
	}
	produce(t, e, exs...)
	waitFor(t, "a batch", 60*time.Second, func() bool { return len(placement(t, base, "bad")) == 2 })
	var list []curator.BatchSummary
	call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/bad/batches?state=ready", nil, &list)
	bid := list[0].ID
	var b curator.BatchView
	call(t, base, "annotator-token-1", "GET", "/api/v1/projects/bad/batches/"+bid, nil, &b)
	ex := b.Items[0].ExampleID
	item := "/api/v1/projects/bad/batches/" + bid + "/items/" + ex
	cases := []struct {
		name, token, method, path string
		body                      any
		want                      int
	}{
		{"no token", "", "GET", "/api/v1/projects", nil, 401},
		{"wrong token", "nope-nope-nope", "GET", "/api/v1/projects", nil, 401},
		{"annotator approves", "annotator-token-1", "POST", "/api/v1/projects/bad/batches/" + bid + "/approve", nil, 403},
		{"annotator creates project", "annotator-token-1", "POST", "/api/v1/projects", map[string]any{"id": "x", "task": "classify", "classes": []string{"a"}}, 403},
		{"unknown project", "annotator-token-1", "GET", "/api/v1/projects/nope/batches", nil, 404},
		{"unknown batch", "annotator-token-1", "GET", "/api/v1/projects/bad/batches/b999999", nil, 404},
		{"save before claim", "annotator-token-1", "PUT", item, map[string]any{"labels": []any{}}, 409},
		{"bad project id", "admin-token-00001", "POST", "/api/v1/projects", map[string]any{"id": "Bad Id!", "task": "classify", "classes": []string{"a"}}, 400},
		{"unknown field", "admin-token-00001", "POST", "/api/v1/projects", map[string]any{"id": "ok", "task": "classify", "classes": []string{"a"}, "colour": "red"}, 400},
		{"not json", "admin-token-00001", "POST", "/api/v1/projects", []byte("{{{"), 400},
		{"bad confidence filter", "annotator-token-1", "GET", "/api/v1/projects/bad/batches?min_confidence=7", nil, 400},
		{"bad export format", "annotator-token-1", "GET", "/api/v1/projects/bad/dataset/export?format=xls", nil, 400},
		{"import garbage", "admin-token-00001", "POST", "/api/v1/projects/bad/dataset/import?format=coco", []byte("not a zip"), 400},
		{"reject without comments", "reviewer-token-1", "POST", "/api/v1/projects/bad/batches/" + bid + "/reject", map[string]any{"comments": ""}, 400},
		{"reorder classes", "admin-token-00001", "PUT", "/api/v1/projects/bad", map[string]any{"id": "bad", "task": "detect",
			"classes": []string{"1", "0", "2", "3", "4", "5", "6", "7", "8", "9"}}, 400},
		{"drop a class by update", "admin-token-00001", "PUT", "/api/v1/projects/bad", map[string]any{"id": "bad", "task": "detect",
			"classes": []string{"0", "1", "2", "3", "4", "5", "6", "7", "8"}}, 400},
		{"remove a class without a reason", "admin-token-00001", "DELETE", "/api/v1/projects/bad/classes/3", nil, 400},
		{"remove an unknown class", "admin-token-00001", "DELETE", "/api/v1/projects/bad/classes/cat?reason=typo", nil, 404},
		{"annotator removes a class", "annotator-token-1", "DELETE", "/api/v1/projects/bad/classes/3?reason=x", nil, 403},
	}
	for _, c := range cases {
		var out map[string]any
		got := call(t, base, c.token, c.method, c.path, c.body, &out)
		if got != c.want || out["error"] == nil || out["error"] == "" {
			t.Errorf("%s: %d %v, want %d with a JSON error", c.name, got, out, c.want)
		}
	}
	// Metrics need no token, so they are not on the API's port (-curator-ops-addr).
	var metrics []byte
	if got := call(t, base, "", "GET", "/metrics", nil, &metrics); got == 200 || strings.Contains(string(metrics), "go_goroutines") {
		t.Errorf("GET /metrics without a token on the API port: %d %.200s, want no metrics", got, metrics)
	}
	// Claimed, then bad annotations are refused with 400; another annotator gets 409.
	call(t, base, "annotator-token-1", "POST", "/api/v1/projects/bad/batches/"+bid+"/claim", nil, nil)
	for name, body := range map[string]any{
		"unknown class":     map[string]any{"labels": []any{map[string]any{"class": "cat", "box": map[string]any{"x0": .1, "y0": .1, "x1": .2, "y1": .2}}}},
		"box outside":       map[string]any{"labels": []any{map[string]any{"class": "3", "box": map[string]any{"x0": .5, "y0": .1, "x1": 1.4, "y1": .2}}}},
		"detection w/o box": map[string]any{"labels": []any{map[string]any{"class": "3"}}},
		"bad status":        map[string]any{"labels": []any{}, "status": "maybe"},
	} {
		var out map[string]any
		if got := call(t, base, "annotator-token-1", "PUT", item, body, &out); got != 400 || out["error"] == nil {
			t.Errorf("%s: %d %v, want 400", name, got, out)
		}
	}
	var out map[string]any
	if got := call(t, base, "annotator-token-2", "POST", "/api/v1/projects/bad/batches/"+bid+"/claim", nil, &out); got != 409 {
		t.Errorf("claiming another annotator's batch: %d %v", got, out)
	}
	if got := call(t, base, "annotator-token-1", "POST", "/api/v1/projects/bad/batches/"+bid+"/submit", nil, &out); got != 409 {
		t.Errorf("submitting an unannotated batch: %d %v", got, out)
	}
}

// TestSelfApprovalIsAProjectPolicy: by default nobody approves a batch they annotated
// (an admin holds the reviewer's role, and would otherwise); a project whose review
// policy allows self-approval (a team of one) lets them.
func TestSelfApprovalIsAProjectPolicy(t *testing.T) {
	e := newEnv(t)
	base := e.start(t, "curator")
	createProject(t, base, "solo", "classify", func(p *project.Project) { p.Batch.Min, p.Batch.Max = 2, 2 })
	truth := produceClassify(t, e, "solo", 0, 2, nil)
	var list []curator.BatchSummary
	waitFor(t, "a ready batch", 60*time.Second, func() bool {
		call(t, base, "admin-token-00001", "GET", "/api/v1/projects/solo/batches?state=ready", nil, &list)
		return len(list) == 1
	})
	id := list[0].ID
	const admin = "admin-token-00001"
	var b curator.BatchView
	if code := call(t, base, admin, "POST", "/api/v1/projects/solo/batches/"+id+"/claim", nil, &b); code != 200 {
		t.Fatalf("claim: %d", code)
	}
	for _, it := range b.Items {
		body := map[string]any{"labels": []project.Label{{Class: truth[it.ExampleID]}}}
		if code := call(t, base, admin, "PUT", "/api/v1/projects/solo/batches/"+id+"/items/"+it.ExampleID, body, nil); code != 200 {
			t.Fatalf("save: %d", code)
		}
	}
	if code := call(t, base, admin, "POST", "/api/v1/projects/solo/batches/"+id+"/submit", nil, nil); code != 200 {
		t.Fatalf("submit: %d", code)
	}
	var out map[string]any
	if code := call(t, base, admin, "POST", "/api/v1/projects/solo/batches/"+id+"/approve", nil, &out); code != 403 || !strings.Contains(fmt.Sprint(out["error"]), "self_approval") {
		t.Fatalf("the annotator approves their own batch: %d %v, want 403 naming the policy", code, out)
	}
	var p map[string]any
	call(t, base, admin, "GET", "/api/v1/projects/solo", nil, &p)
	p["review"] = map[string]any{"self_approval": true}
	if code := call(t, base, admin, "PUT", "/api/v1/projects/solo", p, &out); code != 200 {
		t.Fatalf("turn self-approval on: %d %v", code, out)
	}
	if code := call(t, base, admin, "POST", "/api/v1/projects/solo/batches/"+id+"/approve", nil, &out); code != 200 || out["state"] != project.StateApproved {
		t.Fatalf("self-approval allowed by the project: %d %v, want 200 approved", code, out)
	}
}

// TestReviewItemByItem: a reviewer accepts and rejects single items of a submitted
// batch (a rejection needs a comment); the approval adds the accepted ones to the
// dataset and returns the rejected ones, with the comments and the labels to fix, in a
// new batch claimed by the annotator — or, on request, ready in the queue for anyone.
// The queue counts every sampling reason of every example.
func TestReviewItemByItem(t *testing.T) {
	e := newEnv(t)
	base := e.start(t, "curator")
	const pid = "review"
	createProject(t, base, pid, "classify", func(p *project.Project) { p.Batch.Min, p.Batch.Max = 6, 6 })
	truth := produceClassify(t, e, pid, 300, 6, func(ex *edgeloopv1.Example) {
		ex.Reasons = append(ex.Reasons, &edgeloopv1.SamplingReason{Kind: edgeloopv1.SamplingKind_SAMPLING_KIND_LOW_CONFIDENCE, Strategy: "low-margin"})
	})
	var list []curator.BatchSummary
	waitFor(t, "a ready batch", 60*time.Second, func() bool {
		call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/"+pid+"/batches?state=ready", nil, &list)
		return len(list) == 1
	})
	if n := list[0].Reasons["low_confidence"]; n != 6 {
		t.Fatalf("queue counts low_confidence %d times, want 6 (every example carries it as its second reason): %v", n, list[0].Reasons)
	}
	id := list[0].ID
	api := "/api/v1/projects/" + pid + "/batches/"
	var b curator.BatchView
	call(t, base, "annotator-token-1", "POST", api+id+"/claim", nil, &b)
	for _, it := range b.Items {
		call(t, base, "annotator-token-1", "PUT", api+id+"/items/"+it.ExampleID, map[string]any{"labels": []project.Label{{Class: truth[it.ExampleID]}}}, nil)
	}
	review := func(token, ex, verdict, comment string) int {
		var out map[string]any
		return call(t, base, token, "PUT", api+id+"/items/"+ex+"/review", map[string]string{"verdict": verdict, "comment": comment}, &out)
	}
	if code := review("reviewer-token-1", b.Items[0].ExampleID, "accepted", ""); code != 409 {
		t.Fatalf("reviewing an item of a batch in progress: %d, want 409", code)
	}
	call(t, base, "annotator-token-1", "POST", api+id+"/submit", nil, nil)
	for _, c := range []struct {
		token, verdict, comment string
		want                    int
	}{
		{"annotator-token-1", "accepted", "", 403},
		{"reviewer-token-1", "rejected", "  ", 400},
		{"reviewer-token-1", "maybe", "", 400},
	} {
		if code := review(c.token, b.Items[0].ExampleID, c.verdict, c.comment); code != c.want {
			t.Errorf("review %+v: %d, want %d", c, code, c.want)
		}
	}
	if code := review("reviewer-token-1", "no-such-example", "accepted", ""); code != 404 {
		t.Errorf("reviewing an example not in the batch: %d, want 404", code)
	}
	rejected := map[string]string{b.Items[0].ExampleID: "this is a 3", b.Items[1].ExampleID: "cropped: look again"}
	for _, it := range b.Items {
		verdict, comment := "accepted", rejected[it.ExampleID]
		if comment != "" {
			verdict = "rejected"
		}
		if it.ExampleID == b.Items[2].ExampleID { // an item without a verdict counts as accepted
			continue
		}
		if code := review("reviewer-token-1", it.ExampleID, verdict, comment); code != 200 {
			t.Fatalf("review %s %s: %d", it.ExampleID, verdict, code)
		}
	}
	call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/"+pid+"/batches?state=submitted", nil, &list)
	if len(list) != 1 || list[0].Accepted != 3 || list[0].Rejected != 2 {
		t.Fatalf("submitted batch summary %+v: want 3 accepted, 2 rejected", list)
	}
	var approved project.Batch
	if code := call(t, base, "reviewer-token-1", "POST", api+id+"/approve", map[string]string{"return_to": "annotator"}, &approved); code != 200 {
		t.Fatalf("approve: %d %+v", code, approved)
	}
	if approved.State != project.StateApproved || approved.ReturnedTo == "" {
		t.Fatalf("approved batch: state %s, returned to %q", approved.State, approved.ReturnedTo)
	}
	var ds project.DatasetView
	call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/"+pid+"/dataset", nil, &ds)
	if ds.Total != 4 {
		t.Fatalf("dataset holds %d examples after approving 4 of 6, want 4", ds.Total)
	}
	var rb curator.BatchView
	call(t, base, "annotator-token-1", "GET", api+approved.ReturnedTo, nil, &rb)
	if rb.State != project.StateInProgress || rb.Claim == nil || rb.Claim.User != "annie" || rb.ReturnedFrom != id || len(rb.Items) != 2 {
		t.Fatalf("returned batch %s: state %s, claim %+v, from %q, %d items; want in progress for annie, from %s, 2 items",
			rb.ID, rb.State, rb.Claim, rb.ReturnedFrom, len(rb.Items), id)
	}
	for _, it := range rb.Items {
		if it.Status != "" || it.Feedback == nil || it.Feedback.Comment != rejected[it.ExampleID] || it.Feedback.By != "rex" ||
			len(it.Labels) != 1 || it.Labels[0].Class != truth[it.ExampleID] {
			t.Errorf("returned item %+v: want to do, the reviewer's comment %q and the annotator's labels", it, rejected[it.ExampleID])
		}
	}
	// The annotator corrects them again; this time one goes back to the queue.
	id = rb.ID
	for _, it := range rb.Items {
		call(t, base, "annotator-token-1", "PUT", api+id+"/items/"+it.ExampleID, map[string]any{"labels": []project.Label{{Class: truth[it.ExampleID]}}}, nil)
	}
	call(t, base, "annotator-token-1", "POST", api+id+"/submit", nil, nil)
	if code := review("reviewer-token-1", rb.Items[0].ExampleID, "rejected", "still unsure"); code != 200 {
		t.Fatalf("reject: %d", code)
	}
	if code := call(t, base, "reviewer-token-1", "POST", api+id+"/approve", map[string]string{"return_to": "nowhere"}, nil); code != 400 {
		t.Fatalf("approve returning to nowhere: %d, want 400", code)
	}
	if code := call(t, base, "reviewer-token-1", "POST", api+id+"/approve", map[string]string{"return_to": "queue"}, &approved); code != 200 {
		t.Fatalf("approve: %d", code)
	}
	rb = curator.BatchView{}
	call(t, base, "annotator-token-1", "GET", api+approved.ReturnedTo, nil, &rb)
	if rb.State != project.StateReady || rb.Claim != nil || len(rb.Items) != 1 || rb.Items[0].Feedback.Comment != "still unsure" {
		t.Fatalf("batch returned to the queue: state %s, claim %+v, %d items", rb.State, rb.Claim, len(rb.Items))
	}
	call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/"+pid+"/dataset", nil, &ds)
	if ds.Total != 5 {
		t.Fatalf("dataset holds %d examples, want 5", ds.Total)
	}
	checkApprovedEvents(t, e, pid, 2, 5)
}

// produceClassify produces n classification examples of project pid (numbered from
// first, each changed by mod when not nil) and returns their true classes by id.
func produceClassify(t *testing.T, e env, pid string, first, n int, mod func(*edgeloopv1.Example)) map[string]string {
	t.Helper()
	truth := map[string]string{}
	var exs []*edgeloopv1.Example
	for i := first; i < first+n; i++ {
		ex, tr := example(pid, i, edgeloopv1.Task_TASK_CLASSIFY)
		if mod != nil {
			mod(ex)
		}
		truth[ex.Id] = tr
		exs = append(exs, ex)
	}
	produce(t, e, exs...)
	return truth
}
