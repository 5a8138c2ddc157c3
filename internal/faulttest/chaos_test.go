package faulttest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/internal/servertest"
	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/httpapi"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/mnist"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/s3store"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/registry"
	"github.com/edgeloop/edgeloop/pkg/retrain"
	"github.com/edgeloop/edgeloop/pkg/sampling"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// chaosPlan is one run of the fault suite: its size and the faults it injects.
type chaosPlan struct {
	name     string
	agents   int
	perAgent int
	// window is how long the agents send; the faults fall into it.
	window time.Duration
	// faults are the kinds to inject, one fault each, at seeded random moments.
	faults []string
	// settle bounds the wait for everything to be delivered, batched and trained.
	settle time.Duration
}

// The fault kinds: the three servers, each replica, and an agent's power loss.
const (
	faultKafka     = "kafka"
	faultMinIO     = "minio"
	faultMosquitto = "mosquitto"
	faultBridge    = "bridge"
	faultCurator   = "curator"
	faultRetrain   = "retrain"
	faultAgent     = "agent"
)

// plans: "short" runs in `go test` (and make test); "long" is `make chaos`
// (EDGELOOP_CHAOS=long). EDGELOOP_CHAOS_SEED replays a run; EDGELOOP_CHAOS_N sets the
// examples per agent.
func choosePlan(t *testing.T) (chaosPlan, uint64) {
	t.Helper()
	p := chaosPlan{name: "short", agents: 2, perAgent: 60, window: 30 * time.Second, settle: 150 * time.Second,
		faults: []string{faultMosquitto, faultBridge, faultCurator, faultRetrain, faultAgent, faultMinIO}}
	if os.Getenv("EDGELOOP_CHAOS") == "long" {
		p = chaosPlan{name: "long", agents: 3, perAgent: 400, window: 4 * time.Minute, settle: 5 * time.Minute}
		for range 2 {
			p.faults = append(p.faults, faultKafka, faultMinIO, faultMosquitto, faultBridge, faultBridge, faultCurator, faultCurator,
				faultRetrain, faultRetrain, faultAgent, faultAgent)
		}
	}
	if n, err := strconv.Atoi(os.Getenv("EDGELOOP_CHAOS_N")); err == nil && n > 0 {
		p.perAgent = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("EDGELOOP_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("EDGELOOP_CHAOS_SEED=%q: %v", s, err)
		}
		seed = v
	}
	return p, seed
}

const (
	chaosProject  = "chaos"
	annotatorTok  = "chaos-annotator-token"
	reviewerTok   = "chaos-reviewer-token"
	adminTok      = "chaos-admin-token-0"
	deviceTok     = "chaos-device-token-0"
	replicasPerSv = 2
)

// stack is everything the suite runs: dedicated servers, two replicas of each service
// and the agents, each a process of its own.
type stack struct {
	t                    *testing.T
	dir                  string
	kafka, minio, broker *servertest.Server
	kcfg                 kafkabus.Config
	s3                   s3store.Config
	store                objstore.Store
	pub                  ed25519.PublicKey
	api                  string
	bridges, curators    []*proc
	trainers             []*proc
	agents               []*agentProc
}

type agentProc struct {
	*proc
	device string
	dir    string
	http   string
}

// TestChaos is issue 15's fault-injection proof. Two replicas of the bridge, the curator
// and retrain, and simulated edge agents (real edge-agent processes with their outboxes
// on disk) run against real Kafka, MinIO and Mosquitto; the agents are sent frames with
// known ids while the suite kill -9s, at seeded random moments, the servers, each
// replica and an agent (a power loss: it restarts on the same outbox). Batches are
// annotated and approved meanwhile, so the trainers race for the trainings. Afterwards
// every frame an agent queued is in exactly one batch (approved ones are the dataset),
// none is lost and none is queued twice; no model version is used twice; every model an
// agent installed verifies against the registry's signature; the retained MQTT release
// equals the registry's release. It prints a table of what happened.
func TestChaos(t *testing.T) {
	plan, seed := choosePlan(t)
	t.Logf("chaos plan %s: %d agents × %d examples over %v, %d faults; seed %d (EDGELOOP_CHAOS_SEED=%d replays the schedule)",
		plan.name, plan.agents, plan.perAgent, plan.window, len(plan.faults), seed, seed)
	rng := rand.New(rand.NewPCG(seed, 15))
	began := time.Now()
	s := startStack(t, plan)
	t.Logf("stack up in %v", time.Since(began).Round(time.Second))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ann := &annotator{t: t, api: s.api}
	annDone := make(chan struct{})
	go func() { defer close(annDone); ann.run(ctx) }()

	sends := make([]*sender, len(s.agents))
	var wg sync.WaitGroup
	for i, a := range s.agents {
		sends[i] = &sender{t: t, a: a, index: i, n: plan.perAgent, every: plan.window / time.Duration(plan.perAgent)}
		wg.Add(1)
		go func() { defer wg.Done(); sends[i].run(ctx) }()
	}
	injected := s.inject(rng, plan)
	wg.Wait()
	t.Logf("sending done at %v", time.Since(began).Round(time.Second))

	sent, uncertain := map[string]bool{}, map[string]bool{}
	for _, sd := range sends {
		for _, id := range sd.sent {
			sent[id] = true
		}
		for _, id := range sd.uncertain {
			uncertain[id] = true
		}
	}
	acc := s.settle(plan.settle, sent, uncertain)
	cancel()
	<-annDone

	// No model version used twice: each version has one artifact, and every model an
	// agent installed is the registry's, signed, for that version.
	reg := registry.New(s.store, nil, s.kcfg, "")
	vs, err := reg.Versions(context.Background(), chaosProject)
	if err != nil {
		t.Fatal(err)
	}
	bySHA := map[int64]string{}
	for _, v := range vs {
		if _, dup := bySHA[v.Version]; dup {
			t.Errorf("version %d stored twice", v.Version)
		}
		bySHA[v.Version] = v.SHA256
	}
	raced := s.racedVersions(vs)
	announced := s.announcedVersions()
	for v, shas := range announced {
		if len(shas) > 1 {
			t.Errorf("version %d announced with %d different artifacts: %v", v, len(shas), shas)
		}
		for sha := range shas {
			if bySHA[v] != sha {
				t.Errorf("version %d announced with artifact %s, the registry's is %s", v, sha, bySHA[v])
			}
		}
	}
	installed := 0
	for _, a := range s.agents {
		installed += s.checkInstalled(a, reg)
	}
	rel, err := reg.Current(context.Background(), chaosProject)
	if err != nil {
		t.Fatal(err)
	}
	retained := s.retainedRelease(20 * time.Second)
	if retained == nil || retained.Version != rel.Version || retained.Sha256 != rel.SHA256 || !bytes.Equal(retained.Manifest, rel.Manifest) {
		t.Errorf("retained release %v, registry's v%d (%s)", describe(retained), rel.Version, rel.SHA256)
	}

	exits := 0
	for _, p := range s.all() {
		exits += p.unexpectedExits()
		if n := p.unexpectedExits(); n > 0 {
			t.Errorf("%s exited %d times by itself (a fault must never stop a service)", p.name, n)
		}
	}

	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\nfault suite %s, seed %d, %v\t\n", plan.name, seed, time.Since(began).Round(time.Second))
	var kinds []string
	for k := range injected {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(tw, "faults injected: kill -9 %s\t%d\t\n", k, injected[k])
	}
	fmt.Fprintf(tw, "examples sent (queued by an agent)\t%d\t\n", len(sent))
	fmt.Fprintf(tw, "  in flight at an agent's power loss\t%d\t\n", len(uncertain))
	fmt.Fprintf(tw, "delivered (in one batch)\t%d\t\n", acc.delivered)
	fmt.Fprintf(tw, "  of them approved (in the dataset)\t%d\t\n", acc.approved)
	fmt.Fprintf(tw, "  in-flight ones delivered\t%d\t\n", acc.uncertainDelivered)
	fmt.Fprintf(tw, "stored as look-alikes of a queued example (not queued, by design)\t%d\t\n", acc.lookalikes)
	fmt.Fprintf(tw, "duplicates (queued twice)\t%d\t\n", acc.duplicates)
	fmt.Fprintf(tw, "lost\t%d\t\n", acc.lost)
	fmt.Fprintf(tw, "copies in Kafka (redeliveries, dropped by id)\t%d\t\n", acc.kafkaCopies)
	fmt.Fprintf(tw, "batches approved\t%d\t\n", acc.batches)
	var rs retrain.State
	if _, err := objstore.GetJSON(context.Background(), s.store, "projects/"+chaosProject+"/retrain.json", &rs); err != nil {
		t.Error(err)
	}
	fmt.Fprintf(tw, "trainings started (lease epochs)\t%d\t\n", rs.Epoch)
	fmt.Fprintf(tw, "model versions / released / raced (loser's files left)\t%d / %d / %d\t\n", len(vs), len(rel.History), raced)
	fmt.Fprintf(tw, "models installed by agents (all verified)\t%d\t\n", installed)
	fmt.Fprintf(tw, "release: registry v%d, retained v%d\t\t\n", rel.Version, retainedVersion(retained))
	fmt.Fprintf(tw, "unexpected process exits\t%d\t\n", exits)
	_ = tw.Flush()
	t.Log(b.String())
	if acc.lost > 0 || acc.duplicates > 0 {
		t.Errorf("%d examples lost, %d queued twice: %s", acc.lost, acc.duplicates, strings.Join(acc.problems, "; "))
	}
}

func describe(r *edgeloopv1.ModelRelease) string {
	if r == nil {
		return "none"
	}
	return fmt.Sprintf("v%d (%s)", r.Version, r.Sha256)
}

func retainedVersion(r *edgeloopv1.ModelRelease) int64 {
	if r == nil {
		return 0
	}
	return r.Version
}

// startStack starts the servers, two replicas of each service, the project with its seed
// (v1 trains from it) and the agents.
func startStack(t *testing.T, plan chaosPlan) *stack {
	s := &stack{t: t, dir: t.TempDir()}
	if d := os.Getenv("EDGELOOP_CHAOS_DIR"); d != "" { // keep the processes' logs and data
		s.dir = filepath.Join(d, time.Now().Format("20060102-150405"))
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("logs and data in %s", s.dir)
	}
	s.kafka = servertest.StartDedicated(t, "kafka")
	s.minio = servertest.StartDedicated(t, "minio")
	s.broker = servertest.StartDedicated(t, "mosquitto")
	s.kcfg = kafkabus.Config{Brokers: []string{s.kafka.Addr}, ClientID: "chaos"}
	s.s3 = s3store.Config{Endpoint: s.minio.Addr, Bucket: "edgeloop", AccessKey: "edgeloop", SecretKey: "edgeloop-secret"}
	var err error
	if s.store, err = s3store.Open(context.Background(), s.s3); err != nil {
		t.Fatal(err)
	}
	pub, key, _ := artifact.GenerateKey()
	s.pub = pub
	keyFile, pubFile := filepath.Join(s.dir, "signing.key"), filepath.Join(s.dir, "signing.pub")
	if err := artifact.WriteKeys(keyFile, pubFile, pub, key); err != nil {
		t.Fatal(err)
	}
	tokens := httpapi.Tokens{Tokens: map[string]httpapi.User{
		annotatorTok: {Name: "annie", Roles: []string{httpapi.RoleAnnotator}, Projects: []string{chaosProject}},
		reviewerTok:  {Name: "rex", Roles: []string{httpapi.RoleReviewer}, Projects: []string{chaosProject}},
		adminTok:     {Name: "ada", Roles: []string{httpapi.RoleAdmin}, Projects: []string{httpapi.AllProjects}},
		deviceTok:    {Name: "devices", Roles: []string{httpapi.RoleDevice}, Projects: []string{chaosProject}},
	}}
	tokFile := writeJSON(t, filepath.Join(s.dir, "tokens.json"), tokens)

	// The agents and the annotators reach the curators through a load balancer.
	var apiAddrs []string
	for range replicasPerSv {
		apiAddrs = append(apiAddrs, freeAddr(t))
	}
	lb := &http.Server{Addr: freeAddr(t), Handler: &failover{backends: apiAddrs, client: &http.Client{Timeout: 30 * time.Second}}}
	go func() { _ = lb.ListenAndServe() }()
	t.Cleanup(func() { _ = lb.Close() })
	s.api = "http://" + lb.Addr

	common := append(append([]string{"-log-level", "info", "-partitions", "3", "-key", keyFile, "-public-url", s.api},
		servertest.KafkaArgs(s.kcfg)...), servertest.S3Args(s.s3)...)
	for i := range replicasPerSv {
		c := newProc(t, s.dir, fmt.Sprintf("curator-%d", i), "service", append(slices.Clone(common),
			"-target", "curator,registry,dashboard", "-http-addr", apiAddrs[i], "-curator-ops-addr", "", "-tokens", tokFile, "-tick", "500ms")...)
		b := newProc(t, s.dir, fmt.Sprintf("bridge-%d", i), "service", append(slices.Clone(common),
			"-target", "bridge", "-mqtt-url", "tcp://"+s.broker.Addr, "-bridge-mqtt-client-id", fmt.Sprintf("bridge-%d", i),
			"-bridge-ops-addr", "127.0.0.1:0")...)
		r := newProc(t, s.dir, fmt.Sprintf("retrain-%d", i), "service", append(slices.Clone(common),
			"-target", "retrain", "-backend", "cpu", "-cache-dir", filepath.Join(s.dir, fmt.Sprintf("cache-%d", i)),
			"-retrain-ops-addr", "", "-lease", "6s", "-reannounce", "5s")...)
		s.curators, s.bridges, s.trainers = append(s.curators, c), append(s.bridges, b), append(s.trainers, r)
	}
	for _, p := range s.all() {
		p.start()
	}
	waitFor(t, "a curator's API", 60*time.Second, func() bool {
		code, _ := call(context.Background(), s.api, adminTok, "GET", "/api/v1/me", nil)
		return code == http.StatusOK
	})
	s.createProject()

	factory := modelFile(t)
	sampl := writeJSON(t, filepath.Join(s.dir, "sampling.json"),
		sampling.Config{DedupDistance: -1, Strategies: []sampling.StrategyConfig{{Kind: sampling.Random, Probability: 1}}})
	for i := range plan.agents {
		a := &agentProc{device: fmt.Sprintf("cam-%d", i), dir: filepath.Join(s.dir, fmt.Sprintf("agent-%d", i)), http: freeAddr(t)}
		a.proc = newProc(t, s.dir, "agent-"+a.device, "agent", "-log-level", "info", "-project", chaosProject, "-device", a.device,
			"-data-dir", a.dir, "-mqtt-url", "tcp://"+s.broker.Addr, "-public-keys", pubFile, "-device-token", deviceTok,
			"-registry-url", s.api, "-model", factory, "-http-addr", a.http, "-sampling", sampl,
			"-confirm-timeout", "5s", "-status-interval", "2s")
		a.start()
		s.agents = append(s.agents, a)
	}
	for _, a := range s.agents {
		waitFor(t, a.device+" serving", 30*time.Second, func() bool { _, err := a.status(); return err == nil })
	}
	return s
}

func (s *stack) all() []*proc {
	out := slices.Concat(s.bridges, s.curators, s.trainers)
	for _, a := range s.agents {
		out = append(out, a.proc)
	}
	return out
}

func writeJSON(t *testing.T, path string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// createProject makes the project with tiny trainings that every gate publishes (one
// epoch, a small replay; not worse by 100 points on any test split), small batches that
// close after a second, and imports a seed of 200 digits: v1 trains from it.
func (s *stack) createProject() {
	t := s.t
	p := project.Project{ID: chaosProject, Task: "classify", Classes: datasets.Classes(),
		Batch:   project.BatchSettings{Min: 1, Max: 20, MaxWait: 1e9},
		Retrain: project.RetrainPolicy{Epochs: 1, Replay: 200, Require: "not_worse", Margin: 1, MinTest: 1}}
	code, body := call(context.Background(), s.api, adminTok, "POST", "/api/v1/projects", p)
	if code != http.StatusCreated {
		t.Fatalf("create project: %d %s", code, body)
	}
	if err := retrain.Bootstrap(context.Background(), &retrain.BootstrapOptions{API: s.api, Token: adminTok, Project: chaosProject,
		Dataset: "mnist", Limit: 200, BatchMin: 1, BatchMax: 20, MaxWait: time.Second}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))); err != nil {
		t.Fatal(err)
	}
}

// call is one JSON request to the API; code 0 when it did not get an answer.
func call(ctx context.Context, api, token, method, path string, body any) (int, []byte) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, api+path, r)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// agentStatus is what the suite reads of an agent's /v1/status.
type agentStatus struct {
	ModelVersion string `json:"modelVersion"`
	OutboxDepth  string `json:"outboxDepth"`
}

func (a *agentProc) status() (agentStatus, error) {
	var st agentStatus
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + a.http + "/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status %d", resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// sender sends an agent n frames with known ids, one every every, as a camera would:
// a frame the agent answered "sampled" for is queued in its outbox (on disk); one in
// flight when the agent lost power may or may not be, and is not sent again (one frame
// id, one capture).
type sender struct {
	t         *testing.T
	a         *agentProc
	index, n  int
	every     time.Duration
	sent      []string
	uncertain []string
}

func (sd *sender) run(ctx context.Context) {
	digits := testDigits(sd.t)
	none, _ := drift.Get(drift.None)
	tick := time.NewTicker(sd.every)
	defer tick.Stop()
	client := http.Client{Timeout: 10 * time.Second}
	for j := 0; j < sd.n; j++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		id := fmt.Sprintf("%s-%05d", sd.a.device, j)
		img := datasets.Digits(digits, (sd.index*sd.n+j)%digits.Len(), 1, "c", none, 1)[0].Image.EncodePNG()
		for {
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+sd.a.http+"/v1/infer", bytes.NewReader(img))
			req.Header.Set("Content-Type", "image/png")
			req.Header.Set("X-Frame-Id", id)
			resp, err := client.Do(req)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if !isRefused(err) { // the request reached the agent, which died on it
					sd.uncertain = append(sd.uncertain, id)
					break
				}
				time.Sleep(200 * time.Millisecond) // powered off: the camera waits
				continue
			}
			var res struct {
				Sampled bool `json:"sampled"`
			}
			err = json.NewDecoder(resp.Body).Decode(&res)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK && err == nil && res.Sampled:
				sd.sent = append(sd.sent, id)
			case resp.StatusCode == http.StatusOK && err == nil:
				sd.t.Errorf("%s: frame %s not sampled, though every frame is", sd.a.device, id)
			case resp.StatusCode == http.StatusOK:
				sd.uncertain = append(sd.uncertain, id) // the answer was cut off
			default:
				time.Sleep(200 * time.Millisecond)
				continue
			}
			break
		}
	}
}

func isRefused(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "connection reset"))
}

var digitsOnce struct {
	sync.Once
	set *mnist.Set
	err error
}

func testDigits(t *testing.T) *mnist.Set {
	digitsOnce.Do(func() { digitsOnce.set, digitsOnce.err = mnist.LoadTest("") })
	if digitsOnce.err != nil {
		t.Fatal(digitsOnce.err)
	}
	return digitsOnce.set
}

// annotator annotates (with the predicted class: what the labels say does not matter
// here) and approves every batch that becomes ready, through the load balancer, retrying
// what a killed replica did not answer. Each approval makes a training due.
type annotator struct {
	t        *testing.T
	api      string
	approved int
	errors   int
}

func (an *annotator) run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := an.pass(ctx); err != nil && ctx.Err() == nil {
			an.errors++
			if an.errors <= 5 || an.errors%50 == 0 {
				an.t.Logf("annotator (error %d, retried): %v", an.errors, err)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func (an *annotator) pass(ctx context.Context) error {
	code, body := call(ctx, an.api, annotatorTok, "GET", "/api/v1/projects/"+chaosProject+"/batches", nil)
	if code != http.StatusOK {
		return fmt.Errorf("list batches: %d %s", code, body)
	}
	var list []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return err
	}
	for _, b := range list {
		if b.State == project.StateApproved || b.State == project.StateOpen {
			continue
		}
		if err := an.finish(ctx, b.ID, b.State); err != nil {
			return err
		}
	}
	return nil
}

// finish takes a batch from where it is to approved.
func (an *annotator) finish(ctx context.Context, id, state string) error {
	base := "/api/v1/projects/" + chaosProject + "/batches/" + id
	if state == project.StateReady {
		if code, body := call(ctx, an.api, annotatorTok, "POST", base+"/claim", nil); code != http.StatusOK {
			return fmt.Errorf("claim %s: %d %s", id, code, body)
		}
		state = project.StateInProgress
	}
	if state == project.StateInProgress {
		code, body := call(ctx, an.api, annotatorTok, "GET", base, nil)
		if code != http.StatusOK {
			return fmt.Errorf("get %s: %d %s", id, code, body)
		}
		var b project.Batch
		if err := json.Unmarshal(body, &b); err != nil {
			return err
		}
		for _, it := range b.Items {
			if it.Status == "done" {
				continue
			}
			class := it.Class
			if class == "" {
				class = "0"
			}
			if code, body := call(ctx, an.api, annotatorTok, "PUT", base+"/items/"+it.ExampleID,
				map[string]any{"labels": []project.Label{{Class: class}}, "status": "done"}); code != http.StatusOK {
				return fmt.Errorf("save %s/%s: %d %s", id, it.ExampleID, code, body)
			}
		}
		if code, body := call(ctx, an.api, annotatorTok, "POST", base+"/submit", nil); code != http.StatusOK {
			return fmt.Errorf("submit %s: %d %s", id, code, body)
		}
	}
	if code, body := call(ctx, an.api, reviewerTok, "POST", base+"/approve", nil); code != http.StatusOK {
		return fmt.Errorf("approve %s: %d %s", id, code, body)
	}
	an.approved++
	return nil
}

// fault is one kill -9 and the restart after down.
type fault struct {
	at, down time.Duration
	kind     string
	target   string
	kill     func()
	start    func()
}

// inject runs the plan's faults at seeded random moments of its window, each target
// down for a seeded random while, and returns how many of each kind it injected. Faults
// of different targets may overlap (e.g. Mosquitto killed during a Kafka outage).
func (s *stack) inject(rng *rand.Rand, plan chaosPlan) map[string]int {
	t := s.t
	var fs []*fault
	for _, kind := range plan.faults {
		f := &fault{kind: kind, at: time.Duration(rng.Int64N(int64(plan.window*9/10))) + plan.window/20,
			down: time.Duration(500+rng.IntN(3500)) * time.Millisecond}
		switch kind {
		case faultKafka, faultMinIO, faultMosquitto:
			srv := map[string]*servertest.Server{faultKafka: s.kafka, faultMinIO: s.minio, faultMosquitto: s.broker}[kind]
			f.target, f.kill, f.start = kind, srv.Kill, srv.Start
			f.down = time.Duration(1000+rng.IntN(7000)) * time.Millisecond
		default:
			var ps []*proc
			switch kind {
			case faultBridge:
				ps = s.bridges
			case faultCurator:
				ps = s.curators
			case faultRetrain:
				ps = s.trainers
			case faultAgent:
				for _, a := range s.agents {
					ps = append(ps, a.proc)
				}
			}
			p := ps[rng.IntN(len(ps))]
			f.target, f.kill, f.start = p.name, p.kill, p.start
		}
		fs = append(fs, f)
	}
	// One target is down once at a time: a later fault of a target that is still down
	// waits for its restart.
	sort.Slice(fs, func(i, j int) bool { return fs[i].at < fs[j].at })
	upAt := map[string]time.Duration{}
	for _, f := range fs {
		if f.at < upAt[f.target] {
			f.at = upAt[f.target] + time.Second
		}
		upAt[f.target] = f.at + f.down
	}
	type event struct {
		at   time.Duration
		kill bool
		f    *fault
	}
	var evs []event
	for _, f := range fs {
		evs = append(evs, event{f.at, true, f}, event{f.at + f.down, false, f})
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	start := time.Now()
	injected := map[string]int{}
	for _, ev := range evs {
		if d := ev.at - time.Since(start); d > 0 {
			time.Sleep(d)
		}
		if ev.kill {
			t.Logf("%6.1fs kill -9 %s (down %v)", time.Since(start).Seconds(), ev.f.target, ev.f.down.Round(100*time.Millisecond))
			ev.f.kill()
			injected[ev.f.kind]++
		} else {
			t.Logf("%6.1fs start %s", time.Since(start).Seconds(), ev.f.target)
			ev.f.start()
			if ev.f.kind == faultKafka {
				waitFor(t, "kafka back", 90*time.Second, func() bool {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					defer cancel()
					return kafkabus.Ping(ctx, s.kcfg) == nil
				})
			}
		}
	}
	return injected
}

// accounting is where the frames ended.
type accounting struct {
	delivered, approved, uncertainDelivered int
	// lookalikes were stored but not queued: the curator's look-alike filter found them
	// near-duplicates of an example that is queued (by design, not a loss).
	lookalikes           int
	duplicates, lost     int
	kafkaCopies, batches int
	problems             []string
}

// settle waits until the agents' outboxes are empty, every frame sent is in a batch,
// every batch approved and the trainers idle with the agents on the release, then
// accounts for every frame.
func (s *stack) settle(timeout time.Duration, sent, uncertain map[string]bool) accounting {
	t := s.t
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	wait := func(what string, ok func() bool) {
		for !ok() {
			if time.Now().After(deadline) {
				t.Errorf("timed out settling: %s", what)
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	depth := func() string {
		var out []string
		for _, a := range s.agents {
			st, err := a.status()
			if err != nil || st.OutboxDepth != "" {
				out = append(out, fmt.Sprintf("%s: %s %v", a.device, st.OutboxDepth, err))
			}
		}
		return strings.Join(out, ", ")
	}
	wait("the agents' outboxes to empty", func() bool { return depth() == "" })
	var acc accounting
	wait("every frame in an approved batch", func() bool {
		acc = s.account(ctx, sent, uncertain)
		return acc.lost == 0 && acc.pendingOrOpen() == 0
	})
	reg := registry.New(s.store, nil, s.kcfg, "")
	wait("the trainers idle, and every agent and the retained release on the registry's release", func() bool {
		var rs retrain.State
		if _, err := objstore.GetJSON(ctx, s.store, "projects/"+chaosProject+"/retrain.json", &rs); err != nil || rs.Running != nil || rs.Due {
			return false
		}
		rel, err := reg.Current(ctx, chaosProject)
		if err != nil {
			return false
		}
		for _, a := range s.agents {
			if st, err := a.status(); err != nil || st.ModelVersion != strconv.FormatInt(rel.Version, 10) {
				return false
			}
		}
		// A retained release the broker lost in a crash comes back with retrain's
		// re-announcement (every 5 s here).
		r := s.retainedRelease(2 * time.Second)
		return r != nil && r.Version == rel.Version && bytes.Equal(r.Manifest, rel.Manifest)
	})
	if d := depth(); d != "" {
		t.Errorf("outboxes not empty: %s", d)
	}
	acc = s.account(ctx, sent, uncertain)
	acc.kafkaCopies = s.kafkaCopies(sent)
	return acc
}

func (a accounting) pendingOrOpen() int { return a.delivered - a.approved }

// account reads the object store: each example's record (its frame id), the batches and
// the dataset, and counts each frame's batches.
func (s *stack) account(ctx context.Context, sent, uncertain map[string]bool) accounting {
	st := &project.Store{S: s.store}
	frameOf := map[string]string{} // example id → frame id
	examplesOf := map[string][]string{}
	lookalike := map[string]string{} // frame id → the example it looks like
	err := s.store.List(ctx, project.ProjectPrefix(chaosProject)+"examples/", func(i objstore.Info) error {
		var rec project.ExampleRecord
		if _, err := objstore.GetJSON(ctx, s.store, i.Key, &rec); err != nil {
			return err
		}
		if rec.FrameID != "" {
			frameOf[rec.ID] = rec.FrameID
			examplesOf[rec.FrameID] = append(examplesOf[rec.FrameID], rec.ID)
			if rec.DuplicateOf != "" {
				lookalike[rec.FrameID] = rec.DuplicateOf
			}
		}
		return nil
	})
	var acc accounting
	if err != nil {
		acc.lost = len(sent) // unknown yet: MinIO may be coming back
		return acc
	}
	bs, err := st.Batches(ctx, chaosProject)
	if err != nil {
		acc.lost = len(sent)
		return acc
	}
	inBatches := map[string]int{}
	approved := map[string]bool{}
	for _, b := range bs {
		if b.State == project.StateApproved {
			acc.batches++
		}
		for _, it := range b.Items {
			f := frameOf[it.ExampleID]
			if f == "" {
				continue // a seed image
			}
			inBatches[f]++
			if b.State == project.StateApproved {
				approved[f] = true
			}
		}
	}
	d, err := st.Dataset(ctx, chaosProject)
	if err != nil {
		acc.lost = len(sent)
		return acc
	}
	inDataset := map[string]int{}
	for _, e := range d.Entries {
		if f := frameOf[e.ID]; f != "" {
			inDataset[f]++
		}
	}
	check := func(f string, must bool) {
		n := inBatches[f]
		if of := lookalike[f]; n == 0 && of != "" && len(examplesOf[f]) == 1 && inBatches[frameOf[of]] == 1 {
			// Stored, and by design not queued: it looks like an example that is queued.
			acc.lookalikes++
			return
		}
		switch {
		case n == 0 && must:
			acc.lost++
			if len(acc.problems) < 10 {
				acc.problems = append(acc.problems, fmt.Sprintf("%s in no batch (examples %v)", f, examplesOf[f]))
			}
			return
		case n == 0:
			return
		case n > 1 || len(examplesOf[f]) > 1 || inDataset[f] > 1:
			acc.duplicates++
			if len(acc.problems) < 10 {
				acc.problems = append(acc.problems, fmt.Sprintf("%s: examples %v, in %d batches, %d times in the dataset", f, examplesOf[f], n, inDataset[f]))
			}
		}
		acc.delivered++
		if approved[f] {
			acc.approved++
		}
		if !must {
			acc.uncertainDelivered++
		}
	}
	for f := range sent {
		check(f, true)
	}
	for f := range uncertain {
		check(f, false)
	}
	for f := range examplesOf {
		if !sent[f] && !uncertain[f] {
			acc.problems = append(acc.problems, "unknown frame "+f)
			acc.duplicates++
		}
	}
	return acc
}

// kafkaCopies counts the examples topic's messages beyond one per frame: the
// redeliveries that the curator drops by id. (Every example of the project is in one
// partition: the key is the project.)
func (s *stack) kafkaCopies(sent map[string]bool) int {
	total, frames, caughtUp := 0, map[string]bool{}, false
	servertest.Collect(s.t, s.kcfg, contract.TopicExamples, 30*time.Second, func(m kafka.Message) {
		ex := &edgeloopv1.Example{}
		if proto.Unmarshal(m.Value, ex) == nil && ex.GetFrameId() != "" {
			total++
			frames[ex.GetFrameId()] = true
		}
		caughtUp = m.Offset+1 >= m.HighWaterMark
	}, func() bool { return caughtUp && len(frames) >= len(sent) })
	return total - len(frames)
}

// announcedVersions reads the models topic: the artifacts announced for each version.
func (s *stack) announcedVersions() map[int64]map[string]bool {
	out := map[int64]map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := kafkabus.NewConsumer(s.kcfg, "check-"+servertest.RandomID(6), s.kcfg.Topic(contract.TopicModels), kafkabus.ConsumerOptions{}, zap.NewNop())
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	last := time.Now()
	go func() {
		for ctx.Err() == nil {
			time.Sleep(500 * time.Millisecond)
			mu.Lock()
			idle := time.Since(last) > 3*time.Second && len(out) > 0
			mu.Unlock()
			if idle {
				cancel()
			}
		}
	}()
	_ = c.Run(ctx, func(_ context.Context, m *message.Message) error {
		r := &edgeloopv1.ModelRelease{}
		if proto.Unmarshal(m.Value, r) != nil {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if out[r.Version] == nil {
			out[r.Version] = map[string]bool{}
		}
		out[r.Version][r.Sha256] = true
		last = time.Now()
		return nil
	})
	return out
}

// racedVersions counts the versions whose folder holds the files of more than one
// fencing token: two trainers stored the same version, and the loser's files stayed
// behind, unreferenced.
func (s *stack) racedVersions(vs []*registry.Version) int {
	n := 0
	for _, v := range vs {
		tokens := map[string]bool{}
		_ = s.store.List(context.Background(), fmt.Sprintf("projects/%s/models/v%d/", chaosProject, v.Version), func(i objstore.Info) error {
			base := filepath.Base(i.Key)
			if k := strings.LastIndex(base, "-"); k > 0 && strings.HasPrefix(base, "model-") {
				tokens[base[k+1:]] = true
			}
			return nil
		})
		if len(tokens) > 1 {
			n++
		}
	}
	return n
}

// checkInstalled verifies every model an agent installed (its models folder) against
// the registry: the artifact of that version, signed by the model key. It returns how
// many there were.
func (s *stack) checkInstalled(a *agentProc, reg *registry.Registry) int {
	t := s.t
	n := 0
	ents, err := os.ReadDir(filepath.Join(a.dir, "models"))
	if err != nil {
		t.Errorf("%s: models folder: %v", a.device, err)
		return 0
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".elm") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(a.dir, "models", e.Name()))
		if err != nil {
			t.Error(err)
			continue
		}
		m, err := artifact.Decode(data)
		if err != nil {
			t.Errorf("%s installed %s, which does not decode: %v", a.device, e.Name(), err)
			continue
		}
		v, err := reg.Version(context.Background(), chaosProject, m.Header.Version)
		if err != nil {
			t.Errorf("%s installed %s (v%d), which the registry does not have: %v", a.device, e.Name(), m.Header.Version, err)
			continue
		}
		if err := artifact.Verify(s.pub, data, v.SHA256, v.Signature); err != nil {
			t.Errorf("%s installed %s, which does not verify as the registry's v%d: %v", a.device, e.Name(), v.Version, err)
			continue
		}
		n++
	}
	return n
}

// retainedRelease reads the broker's retained release of the project.
func (s *stack) retainedRelease(wait time.Duration) *edgeloopv1.ModelRelease {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	got := make(chan []byte, 1)
	c, err := mqttbus.Connect(ctx, mqttbus.Config{URL: "tcp://" + s.broker.Addr, ClientID: "chaos-check-" + servertest.RandomID(4), CleanSession: true,
		Subscriptions: []mqttbus.Subscription{{Filter: contract.ReleaseTopic(chaosProject), QoS: 1, Handler: func(m mqttbus.Message) {
			select {
			case got <- m.Payload():
			default:
			}
		}}}}, zap.NewNop())
	if err != nil {
		return nil // the broker is not back yet: no retained release read
	}
	defer c.Disconnect(0)
	select {
	case p := <-got:
		r := &edgeloopv1.ModelRelease{}
		if err := proto.Unmarshal(p, r); err != nil {
			s.t.Errorf("retained release does not decode: %v", err)
			return nil
		}
		return r
	case <-ctx.Done():
		return nil
	}
}
