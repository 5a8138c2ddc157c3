package curator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/internal/servertest"
	"github.com/edgeloop/edgeloop/pkg/colourscenes"
	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/dashboard"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/s3store"
	"github.com/edgeloop/edgeloop/pkg/project"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// artifactsDir is where the browser screenshots are kept: $EDGELOOP_ARTIFACTS, or
// bin/test-artifacts/ui in the repository.
func artifactsDir(t *testing.T) string {
	if d := os.Getenv("EDGELOOP_ARTIFACTS"); d != "" {
		return filepath.Join(d, "ui")
	}
	return filepath.Join(servertest.RepoRoot(t), "bin", "test-artifacts", "ui")
}

// browserResult is what pkg/curator/e2e/annotate.mjs reports.
type browserResult struct {
	Batch     string            `json:"batch"`
	Groups    [][]string        `json:"groups"`
	Skipped   []string          `json:"skipped"`
	Rejected  map[string]string `json:"rejected"`
	KeyMS     []float64         `json:"key_ms"`
	Seconds   float64           `json:"seconds"`
	Mouse     int               `json:"mouse"`
	BelowFold []string          `json:"below_fold"`
	// Linked is the address a fresh browser shows after opening #/dashboard&token=….
	Linked string `json:"linked"`
	// Training is that dashboard's line on the project's retraining ("" without one).
	Training string   `json:"training"`
	Errors   []string `json:"errors"`
	// Picture is what the reviewer's page showed of the first detection item.
	Picture *struct {
		Example string `json:"example"`
		Natural [2]int `json:"natural"`
		Canvas  [2]int `json:"canvas"`
		Points  []struct {
			X, Y  float64
			Image [3]int `json:"image"`
			Shown [3]int `json:"shown"`
		} `json:"points"`
		Edges []struct {
			Box    *project.Box `json:"box"`
			Pixels [][3]int     `json:"pixels"`
		} `json:"edges"`
	} `json:"picture"`
	// Scene is what the PLAN flow saw (annotate.mjs's scene).
	Scene *struct {
		BoxesBefore int `json:"boxes_before"`
		BoxesAfter  int `json:"boxes_after"`
		Zoom        struct {
			Before, After [2]float64
			Anchor, Want  [2]float64
		} `json:"zoom"`
		Pan struct {
			Before, Moved, Back, Room [2]float64
			Key                       string
			HashKept                  bool `json:"hash_kept"`
		} `json:"pan"`
		Selected  []string `json:"selected"`
		FixInView bool     `json:"fix_in_view"`
	} `json:"scene"`
	// Picker is what the PICK flow saw after each step (annotate.mjs's picker).
	Picker *struct {
		Typed        pickerSeen `json:"typed"`
		Picked       pickerSeen `json:"picked"`
		BeforeEscape pickerSeen `json:"before_escape"`
		Escaped      pickerSeen `json:"escaped"`
		Moved        pickerSeen `json:"moved"`
		Second       pickerSeen `json:"second"`
	} `json:"picker"`
}

// pickerSeen is the item page with the class picker, open or not: whether it is open
// with the focus in its box, its ARIA roles hold together, its filter, the option
// chosen and those listed; the selected box's line, the number of boxes, the batch's
// done count and the example on screen.
type pickerSeen struct {
	Open, Focused, Aria     bool
	Filter, Active          string
	Options                 []string
	Selected, Done, Example string
	Boxes                   int
}

// runBrowser runs the browser script on a project whose one ready batch is to be
// corrected into truth.
// env adds settings of the script (PLAN=…, SHOTS=…).
func runBrowser(t *testing.T, base, pid, task string, truth map[string][]project.Label, env ...string) browserResult {
	t.Helper()
	chromium := "/usr/bin/chromium"
	e2e := filepath.Join(servertest.RepoRoot(t), "pkg", "curator", "e2e")
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium not found at %s: run deploy/local/browser.sh install (make test does)", chromium)
	}
	if _, err := os.Stat(filepath.Join(e2e, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("playwright-core not installed in %s: run deploy/local/browser.sh install (make test does)", e2e)
	}
	tj, _ := json.Marshal(truth)
	cmd := exec.Command("node", "annotate.mjs")
	cmd.Dir = e2e
	cmd.Env = append(os.Environ(), "BASE="+base, "ANNOTATOR=annotator-token-1", "REVIEWER=reviewer-token-1",
		"PROJECT="+pid, "TASK="+task, "TRUTH="+string(tj), "OUT="+artifactsDir(t), "CHROMIUM="+chromium)
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("browser test: %v\n%s\n%s\nscreenshots in %s", err, out, stderr.Bytes(), artifactsDir(t))
	}
	var res browserResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("browser output %q: %v", out, err)
	}
	if len(res.Errors) > 0 {
		t.Errorf("page errors: %v", res.Errors)
	}
	if len(res.BelowFold) > 0 {
		t.Errorf("at 1280x720 these are below the fold: %v", res.BelowFold)
	}
	if res.Linked != "#/dashboard" {
		t.Errorf("a fresh browser opening #/dashboard&token=… is at %q, want #/dashboard (logged in, the token out of the address)", res.Linked)
	}
	return res
}

// TestAnnotationUIInBrowser drives the real UI in headless Chromium (Playwright) at
// 1280x720. Classification, keyboard only: a batch of 50 pictures (one camera frame
// sampled twice shows once) is claimed with a key, classified with keys typed without
// waiting for the page, one changed item survives going back and forth, one is
// skipped, the batch is submitted with Ctrl+Enter; a reviewer, whose list updates by
// itself, reviews item by item, rejects one with a comment and approves. No keystroke
// may be lost, no mouse event seen, and the API must hold every label as typed, the
// rejected item back with its annotator. Detection on colour images: the same keys,
// with boxes made, moved and resized by keys and one drawn with the mouse. A project
// of 14 classes: classes beyond the tenth set with the class picker (/).
func TestAnnotationUIInBrowser(t *testing.T) {
	e := newEnv(t)
	base := e.start(t, "curator", dashboard.Extend("http://127.0.0.1", "dashboard-"+servertest.RandomID(6), nil))
	t.Run("classify", func(t *testing.T) {
		const pid = "ui-classify"
		createProject(t, base, pid, "classify", func(p *project.Project) {
			p.Batch.Min, p.Batch.Max, p.Batch.MaxWait = 50, 51, config.Duration(2*time.Second)
		})
		// Its retraining fails (as the retrain service records it): the dashboard says so.
		store, err := s3store.Open(context.Background(), e.s3)
		if err != nil {
			t.Fatal(err)
		}
		failing := `{"due": true, "failures": 2, "retry_at": "2026-03-01T12:01:00Z", "last": {"at": "2026-03-01T12:00:00Z", "error": "storage refused"}}`
		if _, err := store.Put(context.Background(), project.RetrainKey(pid), []byte(failing), objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		truth := map[string][]project.Label{}
		var exs []*edgeloopv1.Example
		for i := 0; i < 50; i++ {
			ex, cls := example(pid, 100+i, edgeloopv1.Task_TASK_CLASSIFY)
			ex.FrameId = fmt.Sprintf("frame-%d", i)
			truth[ex.Id] = []project.Label{{Class: cls}}
			exs = append(exs, ex)
			if i == 7 { // the same frame again, flagged by the operator: one picture to correct
				again, _ := example(pid, 100+i, edgeloopv1.Task_TASK_CLASSIFY)
				again.Id, again.FrameId = ex.Id+"-flagged", ex.FrameId
				again.Reasons = []*edgeloopv1.SamplingReason{{Kind: edgeloopv1.SamplingKind_SAMPLING_KIND_OPERATOR_FLAGGED, Strategy: "operator"}}
				again.Correction = &edgeloopv1.Annotation{Labels: []*edgeloopv1.Label{{ClassName: cls}}}
				truth[again.Id] = truth[ex.Id]
				exs = append(exs, again)
			}
		}
		produce(t, e, exs...)
		waitFor(t, "a ready batch", 60*time.Second, func() bool {
			var list []curator.BatchSummary
			call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/"+pid+"/batches?state=ready", nil, &list)
			return len(list) == 1
		})
		res := runBrowser(t, base, pid, "classify", truth)
		if !strings.Contains(res.Training, "training failing: 2 in a row") || !strings.Contains(res.Training, "last error: storage refused") {
			t.Errorf("the dashboard's training line is %q, want the 2 failures in a row and the last error", res.Training)
		}
		if len(res.Groups) != 50 {
			t.Errorf("the UI showed %d pictures, want 50 (one frame sampled twice is one picture)", len(res.Groups))
		}
		if res.Mouse != 0 {
			t.Errorf("%d mouse events in the keyboard-only flow", res.Mouse)
		}
		var b curator.BatchView
		call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/"+pid+"/batches/"+res.Batch, nil, &b)
		if b.State != project.StateApproved || b.ReturnedTo == "" {
			t.Fatalf("batch %s is %s (returned to %q) after the browser approved it with a rejected item", res.Batch, b.State, b.ReturnedTo)
		}
		skipped := map[string]bool{}
		for _, id := range res.Skipped {
			skipped[id] = true
		}
		for _, it := range b.Items {
			switch {
			case skipped[it.ExampleID]:
				if it.Status != "skipped" {
					t.Errorf("example %s: status %q, want skipped", it.ExampleID, it.Status)
				}
			case it.Status != "done" || len(it.Labels) != 1 || it.Labels[0].Class != truth[it.ExampleID][0].Class:
				t.Errorf("example %s: %s %+v, want %s as typed", it.ExampleID, it.Status, it.Labels, truth[it.ExampleID][0].Class)
			}
			if c, ok := res.Rejected[it.ExampleID]; ok != it.Rejected() || (ok && it.Review.Comment != c) {
				t.Errorf("example %s: review %+v, want rejected %v with %q", it.ExampleID, it.Review, ok, c)
			}
		}
		var rb curator.BatchView
		call(t, base, "annotator-token-1", "GET", "/api/v1/projects/"+pid+"/batches/"+b.ReturnedTo, nil, &rb)
		if rb.State != project.StateInProgress || rb.Claim == nil || rb.Claim.User != "annie" || len(rb.Items) != len(res.Rejected) {
			t.Fatalf("returned batch %+v: want the %d rejected examples, claimed by annie", rb.Batch, len(res.Rejected))
		}
		for _, it := range rb.Items {
			if it.Feedback == nil || it.Feedback.Comment != res.Rejected[it.ExampleID] {
				t.Errorf("returned example %s: feedback %+v, want %q", it.ExampleID, it.Feedback, res.Rejected[it.ExampleID])
			}
		}
		sort.Float64s(res.KeyMS)
		if len(res.KeyMS) > 0 {
			t.Logf("%d pictures in %.1f s (%.0f per minute); key to next picture p50 %.0f ms, max %.0f ms over %d keys",
				len(res.Groups), res.Seconds, float64(len(res.Groups))*60/res.Seconds, res.KeyMS[len(res.KeyMS)/2], res.KeyMS[len(res.KeyMS)-1], len(res.KeyMS))
		}
	})
	t.Run("detect", func(t *testing.T) {
		const pid = "ui-detect"
		createProject(t, base, pid, "detect", func(p *project.Project) { p.Batch.Min, p.Batch.Max = 4, 4 })
		truth := map[string][]project.Label{}
		var exs []*edgeloopv1.Example
		for i := 0; i < 4; i++ {
			ex, cls := example(pid, 100+i, edgeloopv1.Task_TASK_DETECT)
			ex.Image = &edgeloopv1.Image{Data: colourPNG(i, 160, 120), ContentType: "image/png", Width: 160, Height: 120}
			truth[ex.Id] = []project.Label{
				{Class: cls, Box: &project.Box{X0: .1, Y0: .15, X1: .45, Y1: .6}},
				{Class: fmt.Sprint((i + 3) % 10), Box: &project.Box{X0: .55, Y0: .3, X1: .9, Y1: .85}},
			}
			exs = append(exs, ex)
		}
		produce(t, e, exs...)
		waitFor(t, "a ready batch", 60*time.Second, func() bool { return len(placement(t, base, pid)) == 4 })
		res := runBrowser(t, base, pid, "detect", truth)
		var b curator.BatchView
		call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/"+pid+"/batches/"+res.Batch, nil, &b)
		if b.State != project.StateApproved {
			t.Fatalf("batch %s is %s after the browser approved it", res.Batch, b.State)
		}
		checkPicture(t, res)
		for _, it := range b.Items {
			want := truth[it.ExampleID]
			if len(it.Labels) != len(want) {
				t.Fatalf("example %s: %d labels saved, want %d: %+v", it.ExampleID, len(it.Labels), len(want), it.Labels)
			}
			for i, l := range it.Labels {
				if l.Class != want[i].Class || !close(l.Box, want[i].Box) {
					t.Errorf("example %s label %d: %s %+v, want %s %+v", it.ExampleID, i, l.Class, l.Box, want[i].Class, want[i].Box)
				}
			}
		}
	})
	t.Run("detect-scene", func(t *testing.T) { annotateScene(t, e, base) })
	t.Run("class-picker", func(t *testing.T) { pickClasses(t, e, base) })
	t.Logf("screenshots in %s", artifactsDir(t))
}

// annotateScene: one 640×480 colour scene over a photograph (colourscenes) whose model
// found its objects but one: a box of the wrong class, a spurious one, one missed. In
// Chromium the annotator zooms in with the wheel where the missed object is (the point
// stays under the cursor), pans with Alt+arrows and back, draws the box on the zoomed
// picture, cycles the boxes with Tab and Shift+Tab to fix a class with its key (the
// selected box scrolled into view) and delete the spurious box, and submits; the saved
// boxes, in the original picture's pixels, are the scene's.
func annotateScene(t *testing.T, e env, base string) {
	const pid, w, h = "ui-scene", 640, 480
	createProject(t, base, pid, "detect", func(p *project.Project) { p.Batch.Min, p.Batch.Max = 1, 1 })
	none, _ := drift.Get(drift.None)
	g, err := colourscenes.New(colourscenes.LoadPhotos("", zap.NewNop(), colourscenes.SiteOf(none)))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := g.Scenes(colourscenes.SceneConfig{W: w, H: h, Classes: 8, MinObjects: 24, MaxObjects: 24, MinSize: 24, MaxSize: 110}, 1, 3, none)
	if err != nil {
		t.Fatal(err)
	}
	// The missed object goes in the middle, where no other box reaches.
	draw := project.Label{Class: "7", Box: &project.Box{X0: .43, Y0: .41, X1: .57, Y1: .56}}
	var truth []project.Label
	for _, b := range sc[0].Boxes {
		if b.X1 > .39 && b.X0 < .61 && b.Y1 > .37 && b.Y0 < .60 {
			continue
		}
		truth = append(truth, project.Label{Class: fmt.Sprint(b.Class), Box: &project.Box{X0: b.X0, Y0: b.Y0, X1: b.X1, Y1: b.Y1}})
	}
	if len(truth) < 10 {
		t.Fatalf("%d boxes off the middle of the scene, want at least 10", len(truth))
	}
	const fix, spurious = 4, 8
	wrong := fmt.Sprint((truth[fix].Class[0] - '0' + 1) % 10)
	ex, _ := example(pid, 500, edgeloopv1.Task_TASK_DETECT)
	ex.Image = &edgeloopv1.Image{Data: sc[0].Image.EncodeJPEG(92), ContentType: "image/jpeg", Width: w, Height: h}
	ex.Predictions, ex.SimulationTruth = nil, nil
	for i, l := range truth {
		if i == spurious {
			ex.Predictions = append(ex.Predictions, &edgeloopv1.Prediction{ClassName: "3", Confidence: 0.4, Box: &edgeloopv1.Box{XMin: .02, YMin: .03, XMax: .09, YMax: .12}})
		}
		c := l.Class
		if i == fix {
			c = wrong
		}
		ex.Predictions = append(ex.Predictions, &edgeloopv1.Prediction{ClassName: c, Confidence: 0.9, Box: &edgeloopv1.Box{XMin: l.Box.X0, YMin: l.Box.Y0, XMax: l.Box.X1, YMax: l.Box.Y1}})
	}
	produce(t, e, ex)
	waitFor(t, "a ready batch", 60*time.Second, func() bool { return len(placement(t, base, pid)) == 1 })
	plan, _ := json.Marshal(map[string]any{"draw": draw, "fix": map[string]any{"index": fix, "class": truth[fix].Class, "box": truth[fix].Box}, "delete": spurious})
	want := append(truth, draw)
	res := runBrowser(t, base, pid, "detect", map[string][]project.Label{ex.Id: want}, "PLAN="+string(plan), "SHOTS=scene")

	s := res.Scene
	if s == nil {
		t.Fatal("the browser script reported no scene")
	}
	t.Logf("scene: %d boxes shown, zoom %v → %v px, anchor %v (want %v), pan %+v, selected %q", s.BoxesBefore, s.Zoom.Before, s.Zoom.After, s.Zoom.Anchor, s.Zoom.Want, s.Pan, s.Selected)
	if s.BoxesBefore != len(truth)+1 || s.BoxesAfter != len(want) {
		t.Errorf("%d boxes shown, %d after the fixes; want the %d predictions and the %d true boxes", s.BoxesBefore, s.BoxesAfter, len(truth)+1, len(want))
	}
	// The point stays put but where the stage cannot scroll further: the first step's
	// picture (600 px high) is barely taller than the stage, which bounds its scroll by
	// a few pixels, ~1 % of the picture after three steps.
	if r := s.Zoom.After[0] / s.Zoom.Before[0]; r < 1.9 || r > 2.0 || math.Abs(s.Zoom.Anchor[0]-s.Zoom.Want[0]) > .02 || math.Abs(s.Zoom.Anchor[1]-s.Zoom.Want[1]) > .02 {
		t.Errorf("three wheel steps: %.2f× (want 1.25³), picture point %v under the cursor (want %v)", r, s.Zoom.Anchor, s.Zoom.Want)
	}
	if s.Pan.Moved == s.Pan.Before || s.Pan.Back != s.Pan.Before || !s.Pan.HashKept {
		t.Errorf("pan: scroll %v → %v → %v, location kept %v; want a move and back, on the same page", s.Pan.Before, s.Pan.Moved, s.Pan.Back, s.Pan.HashKept)
	}
	wantSel := []string{fmt.Sprintf("#%d 7", len(truth)+2), fmt.Sprintf("#%d %s", fix+1, wrong), fmt.Sprintf("#%d 3", spurious+1)}
	if !slices.Equal(s.Selected, wantSel) || !s.FixInView {
		t.Errorf("selected %q, the fixed box in view %v; want %q, true", s.Selected, s.FixInView, wantSel)
	}

	var b curator.BatchView
	call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/"+pid+"/batches/"+res.Batch, nil, &b)
	if b.State != project.StateApproved || len(b.Items) != 1 {
		t.Fatalf("batch %s is %s with %d items after the browser approved it", res.Batch, b.State, len(b.Items))
	}
	if r := b.Examples[ex.Id]; r == nil || r.Width != w || r.Height != h || r.Channels != 3 {
		t.Fatalf("example %s: %+v, want the 640x480 colour picture", ex.Id, r)
	}
	got := b.Items[0].Labels
	if len(got) != len(want) {
		t.Fatalf("%d boxes saved, want %d: %+v", len(got), len(want), got)
	}
	px := func(b *project.Box) [4]float64 {
		return [4]float64{float64(b.X0) * w, float64(b.Y0) * h, float64(b.X1) * w, float64(b.Y1) * h}
	}
	for i, l := range got {
		tol := 0.5 // untouched: where the model put it
		if i == len(got)-1 {
			tol = 3 // drawn with the mouse on the zoomed picture
		}
		a, z := px(l.Box), px(want[i].Box)
		for k := range a {
			if l.Class != want[i].Class || math.Abs(a[k]-z[k]) > tol {
				t.Fatalf("box %d: %s at %.1f px, want %s at %.1f px (±%.1f) of the %dx%d picture", i, l.Class, a, want[i].Class, z, tol, w, h)
			}
		}
	}
}

// pickClasses: a detection project of 14 classes (COCO's first), more than the digit
// keys reach. In Chromium the annotator claims the batch with N and at once, while it
// opens, types / and "sign" (S skips and N draws a box on the page, not in the picker)
// and Enter: the first box becomes "stop sign", the twelfth class. On the second box /
// and "bench" then Esc leave it as it was, still selected; / "b" ↓↓↓ Enter makes it
// "bench", the fourteenth. The saved boxes have those classes.
func pickClasses(t *testing.T, e env, base string) {
	const pid = "ui-classes"
	classes := []string{"person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
		"traffic light", "fire hydrant", "stop sign", "parking meter", "bench"}
	createProject(t, base, pid, "detect", func(p *project.Project) { p.Classes, p.Batch.Min, p.Batch.Max = classes, 1, 1 })
	boxes := []*project.Box{{X0: .1, Y0: .15, X1: .45, Y1: .6}, {X0: .55, Y0: .3, X1: .9, Y1: .85}}
	ex, _ := example(pid, 700, edgeloopv1.Task_TASK_DETECT)
	ex.Image = &edgeloopv1.Image{Data: colourPNG(1, 160, 120), ContentType: "image/png", Width: 160, Height: 120}
	ex.SimulationTruth = nil
	ex.Predictions = nil
	for i, c := range []string{"person", "car"} {
		b := boxes[i]
		ex.Predictions = append(ex.Predictions, &edgeloopv1.Prediction{ClassName: c, Confidence: 0.9, Box: &edgeloopv1.Box{XMin: b.X0, YMin: b.Y0, XMax: b.X1, YMax: b.Y1}})
	}
	produce(t, e, ex)
	waitFor(t, "a ready batch", 60*time.Second, func() bool { return len(placement(t, base, pid)) == 1 })
	want := []project.Label{{Class: "stop sign", Box: boxes[0]}, {Class: "bench", Box: boxes[1]}}
	plan := `{"first": "sign", "escape": "bench", "second": {"type": "b", "down": 3}}`
	res := runBrowser(t, base, pid, "detect", map[string][]project.Label{ex.Id: want}, "PICK="+plan, "SHOTS=picker")

	p := res.Picker
	if p == nil {
		t.Fatal("the browser script reported no picker")
	}
	t.Logf("picker: typed %+v; picked %+v; before Esc %+v; after Esc %+v; moved %+v; second %+v", p.Typed, p.Picked, p.BeforeEscape, p.Escaped, p.Moved, p.Second)
	for _, s := range []struct {
		step string
		got  pickerSeen
		ok   bool
		want string
	}{
		{"/ sign typed while the batch opened", p.Typed, p.Typed.Open && p.Typed.Focused && p.Typed.Aria && p.Typed.Filter == "sign" &&
			slices.Equal(p.Typed.Options, []string{"stop sign"}) && p.Typed.Active == "stop sign",
			`open with the focus in its box, filter "sign" (no key lost), only "stop sign" listed and chosen`},
		{"/ sign typed while the batch opened", p.Typed, p.Typed.Boxes == 2 && p.Typed.Done == "0 / 1 done" && p.Typed.Example == ex.Id,
			"the 2 boxes and the item still to do: S and N typed in the picker neither skip nor draw"},
		{"Enter", p.Picked, !p.Picked.Open && p.Picked.Selected == "#1 stop sign" && p.Picked.Boxes == 2 && p.Picked.Done == "0 / 1 done",
			`closed, the first box "stop sign", the item not saved and left (Enter set the class only)`},
		{"Tab / bench", p.BeforeEscape, p.BeforeEscape.Open && p.BeforeEscape.Focused && p.BeforeEscape.Aria && p.BeforeEscape.Filter == "bench" &&
			p.BeforeEscape.Active == "bench" && p.BeforeEscape.Selected == "#2 car", `open on the second box, "bench" chosen`},
		{"Esc", p.Escaped, !p.Escaped.Open && !p.Escaped.Focused && p.Escaped.Selected == "#2 car" && p.Escaped.Boxes == 2,
			`closed, the second box still "car" and still selected`},
		{"/ b ↓↓↓", p.Moved, p.Moved.Open && p.Moved.Aria && slices.Equal(p.Moved.Options, []string{"bicycle", "bus", "boat", "bench"}) && p.Moved.Active == "bench",
			`the classes starting with b listed in order, "bench" chosen`},
		{"Enter", p.Second, !p.Second.Open && p.Second.Selected == "#2 bench" && p.Second.Boxes == 2, `closed, the second box "bench"`},
	} {
		if !s.ok {
			t.Errorf("after %s: %+v; want %s", s.step, s.got, s.want)
		}
	}

	var b curator.BatchView
	call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/"+pid+"/batches/"+res.Batch, nil, &b)
	if b.State != project.StateApproved || len(b.Items) != 1 {
		t.Fatalf("batch %s is %s with %d items after the browser approved it", res.Batch, b.State, len(b.Items))
	}
	got := b.Items[0].Labels
	if len(got) != len(want) {
		t.Fatalf("%d boxes saved, want %d: %+v", len(got), len(want), got)
	}
	for i, l := range got {
		if l.Class != want[i].Class || !close(l.Box, want[i].Box) {
			t.Errorf("box %d saved as %s %+v, want %s %+v", i, l.Class, l.Box, want[i].Class, want[i].Box)
		}
	}
}

// checkPicture: the reviewer's page showed the colour picture whole, at its aspect
// ratio and at least its natural size, every pixel in its place and colour, and each
// saved box's outline where the box is.
func checkPicture(t *testing.T, res browserResult) {
	t.Helper()
	p := res.Picture
	if p == nil {
		t.Fatal("the browser script read no picture")
	}
	n, c := p.Natural, p.Canvas
	if n != [2]int{160, 120} || c[0] < n[0] || c[1] < n[1] || math.Abs(float64(c[0])/float64(c[1])-float64(n[0])/float64(n[1])) > 0.02 {
		t.Fatalf("a %dx%d picture shown on a %dx%d canvas: want it whole, at least at its size", n[0], n[1], c[0], c[1])
	}
	if len(p.Edges) != 2 {
		t.Fatalf("%d boxes saved on %s, want 2", len(p.Edges), p.Example)
	}
	near := func(x, y float64) bool { // on a box's outline or its label
		for _, e := range p.Edges {
			b := e.Box
			dx := math.Min(math.Abs(x-float64(b.X0)), math.Abs(x-float64(b.X1))) * float64(c[0])
			dy := math.Min(math.Abs(y-float64(b.Y0)), math.Abs(y-float64(b.Y1))) * float64(c[1])
			inX, inY := x >= float64(b.X0)-0.02 && x <= float64(b.X1)+0.02, y >= float64(b.Y0)-0.02 && y <= float64(b.Y1)+0.02
			label := x >= float64(b.X0)-0.02 && x <= float64(b.X0)+0.25 && y <= float64(b.Y0)+0.01 && (float64(b.Y0)-y)*float64(c[1]) < 20
			if (dx < 6 && inY) || (dy < 6 && inX) || label {
				return true
			}
		}
		return false
	}
	checked, wrong, colourful := 0, 0, 0
	for _, pt := range p.Points {
		if near(pt.X, pt.Y) {
			continue
		}
		checked++
		for k := range 3 {
			if math.Abs(float64(pt.Image[k]-pt.Shown[k])) > 12 {
				wrong++
				break
			}
		}
		if max(pt.Image[0], pt.Image[1], pt.Image[2])-min(pt.Image[0], pt.Image[1], pt.Image[2]) > 60 {
			colourful++
		}
	}
	if checked < 500 || wrong > checked/50 || colourful < checked/2 {
		t.Fatalf("of %d points off the boxes, %d show another colour than the picture's at that place; %d are colourful", checked, wrong, colourful)
	}
	// The reviewer's boxes are outlined in green (#22c55e).
	for _, e := range p.Edges {
		found := false
		for _, px := range e.Pixels {
			found = found || (math.Abs(float64(px[0]-0x22)) < 40 && math.Abs(float64(px[1]-0xc5)) < 40 && math.Abs(float64(px[2]-0x5e)) < 40)
		}
		if !found {
			t.Errorf("box %+v: no outline at its left edge (pixels %v)", *e.Box, e.Pixels)
		}
	}
}

// colourPNG is a distinct colour picture: stripes and a disc that differ with i.
func colourPNG(i, w, h int) []byte {
	im := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{R: uint8(255 * x / w), G: uint8(255 * y / h), B: 40, A: 255}
			if (x*(i+1)/20+y*(4-i)/20)%2 == 0 {
				c = color.RGBA{R: 20, G: 60 + uint8(40*i), B: 200, A: 255}
			}
			if dx, dy := x-(i+1)*w/5, y-h/2; dx*dx+dy*dy < (h/4)*(h/4) {
				c = color.RGBA{R: 250, G: 200, B: 20, A: 255}
			}
			im.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, im)
	return buf.Bytes()
}

func close(a, b *project.Box) bool {
	if a == nil || b == nil {
		return a == b
	}
	d := math.Max(math.Max(math.Abs(float64(a.X0-b.X0)), math.Abs(float64(a.Y0-b.Y0))), math.Max(math.Abs(float64(a.X1-b.X1)), math.Abs(float64(a.Y1-b.Y1))))
	return d < 0.03
}
