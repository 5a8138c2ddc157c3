package curator_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/internal/servertest"
	"github.com/edgeloop/edgeloop/pkg/curator"
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

// TestAnnotationUIInBrowser drives the real UI in headless Chromium (Playwright): an
// annotator claims a batch and corrects it with keys (classification) and the mouse
// (detection boxes), submits; a reviewer approves. The API must then hold exactly what
// the browser entered.
func TestAnnotationUIInBrowser(t *testing.T) {
	chromium := "/usr/bin/chromium"
	e2e := filepath.Join(servertest.RepoRoot(t), "pkg", "curator", "e2e")
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium not found at %s: run deploy/local/browser.sh install (make test does)", chromium)
	}
	if _, err := os.Stat(filepath.Join(e2e, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("playwright-core not installed in %s: run deploy/local/browser.sh install (make test does)", e2e)
	}
	e := newEnv(t)
	base := e.start(t, "curator")
	for _, task := range []string{"classify", "detect"} {
		t.Run(task, func(t *testing.T) {
			pid := "ui-" + task
			createProject(t, base, pid, task, func(p *project.Project) { p.Batch.Min, p.Batch.Max = 4, 4 })
			truth := map[string][]project.Label{}
			var exs []*edgeloopv1.Example
			for i := 0; i < 4; i++ {
				tk := edgeloopv1.Task_TASK_CLASSIFY
				if task == "detect" {
					tk = edgeloopv1.Task_TASK_DETECT
				}
				ex, cls := example(pid, 100+i, tk)
				if task == "detect" {
					truth[ex.Id] = []project.Label{
						{Class: cls, Box: &project.Box{X0: .1, Y0: .15, X1: .45, Y1: .6}},
						{Class: fmt.Sprint((i + 3) % 10), Box: &project.Box{X0: .55, Y0: .3, X1: .9, Y1: .85}},
					}
				} else {
					truth[ex.Id] = []project.Label{{Class: cls}}
				}
				exs = append(exs, ex)
			}
			produce(t, e, exs...)
			waitFor(t, "a ready batch", 60*time.Second, func() bool { return len(placement(t, base, pid)) == 4 })
			tj, _ := json.Marshal(truth)
			cmd := exec.Command("node", "annotate.mjs")
			cmd.Dir = e2e
			cmd.Env = append(os.Environ(), "BASE="+base, "ANNOTATOR=annotator-token-1", "REVIEWER=reviewer-token-1",
				"PROJECT="+pid, "TASK="+task, "TRUTH="+string(tj), "OUT="+artifactsDir(t), "CHROMIUM="+chromium)
			out, err := cmd.Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				t.Fatalf("browser test: %v\n%s\n%s", err, out, stderr)
			}
			var res struct {
				Batch     string   `json:"batch"`
				Annotated int      `json:"annotated"`
				Errors    []string `json:"errors"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("browser output %q: %v", out, err)
			}
			if len(res.Errors) > 0 {
				t.Errorf("page errors: %v", res.Errors)
			}
			var b curator.BatchView
			call(t, base, "reviewer-token-1", "GET", "/api/v1/projects/"+pid+"/batches/"+res.Batch, nil, &b)
			if b.State != project.StateApproved {
				t.Fatalf("batch %s is %s after the browser approved it", res.Batch, b.State)
			}
			for _, it := range b.Items {
				want := truth[it.ExampleID]
				if len(it.Labels) != len(want) {
					t.Fatalf("example %s: %d labels saved, want %d: %+v", it.ExampleID, len(it.Labels), len(want), it.Labels)
				}
				for i, l := range it.Labels {
					if l.Class != want[i].Class {
						t.Errorf("example %s label %d: class %s, want %s", it.ExampleID, i, l.Class, want[i].Class)
					}
					if want[i].Box != nil && !close(l.Box, want[i].Box) {
						t.Errorf("example %s label %d: box %+v, want %+v", it.ExampleID, i, l.Box, want[i].Box)
					}
				}
			}
			t.Logf("%s: %d examples corrected in the browser, batch %s approved; screenshots in %s", task, res.Annotated, res.Batch, artifactsDir(t))
		})
	}
}

func close(a, b *project.Box) bool {
	if a == nil || b == nil {
		return a == b
	}
	d := math.Max(math.Max(math.Abs(float64(a.X0-b.X0)), math.Abs(float64(a.Y0-b.Y0))), math.Max(math.Abs(float64(a.X1-b.X1)), math.Abs(float64(a.Y1-b.Y1))))
	return d < 0.03
}
