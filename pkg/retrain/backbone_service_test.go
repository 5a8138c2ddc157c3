package retrain

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/weights"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/registry"
)

// TestFirstModelFromProjectBackbone, on the memory store: a project whose model setting
// names a backbone trains its first model from that file — a trunk tensor of the
// trained model stays next to the file's value (a few steps move it little; a fresh
// initialisation is far from it) — and the model's lineage names the file and its
// sha256; a project whose backbone is not a weights file fails its training with an
// error naming the file, and the service goes on.
func TestFirstModelFromProjectBackbone(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	s := newCPUService(t, mem)
	file, err := filepath.Abs(filepath.Join("..", "nn", "weights", "testdata", "mobilenetv2-035.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(t.TempDir(), "junk.safetensors")
	if err := os.WriteFile(junk, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"good", "bad"} {
		spec := &nn.Spec{Input: [2]int{64, 64}, Backbone: map[string]string{"good": file, "bad": junk}[id]}
		p := &project.Project{ID: id, Task: "classify", Classes: []string{"a", "b"}, Model: spec,
			Retrain: project.RetrainPolicy{Epochs: 1}}
		if err := s.cur.CreateProject(ctx, p); err != nil {
			t.Fatal(err)
		}
		putSmallDataset(t, mem, p)
	}

	if _, err := s.TrainOnce(ctx, "bad", "test", "", registry.Fence{}); err == nil || !strings.Contains(err.Error(), junk) {
		t.Fatalf("a junk backbone: %v, want an error naming %s", err, junk)
	}
	// The first model is stored, then released; with no Kafka producer here its
	// announcement fails after the store, which this test does not need.
	out, err := s.TrainOnce(ctx, "good", "test", "", registry.Fence{})
	if out == nil {
		t.Fatal(err)
	}
	m, err := s.reg.Model(ctx, "good", out.Version.Version)
	if err != nil {
		t.Fatal(err)
	}
	l := m.Header.Lineage
	if l.Backbone != "mobilenetv2-035.safetensors" || len(l.BackboneSHA256) != 64 || l.Mode != ModeScratch {
		t.Errorf("lineage %+v, want the backbone file and its sha256", l)
	}
	ts, err := weights.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	const probe = "features.3.conv.1.0.weight"
	names, err := weights.TorchvisionNames(m.Header.Arch)
	if err != nil {
		t.Fatal(err)
	}
	k := slices.Index(names, probe)
	fresh, _ := nn.InitParams(m.Header.Arch, 1)
	want := ts[probe].Data
	dist := func(v []float32) float64 {
		var d float64
		for i := range v {
			d += math.Abs(float64(v[i] - want[i]))
		}
		return d / float64(len(v))
	}
	trained, init := dist(m.Params.Values[k]), dist(fresh.Values[k])
	if !(trained < init/5) {
		t.Errorf("%s: trained model is %.4g from the backbone's (mean |Δ|), a fresh init %.4g: not started from the backbone", probe, trained, init)
	}
	t.Logf("%s: mean |trained − backbone| %.4g, |fresh − backbone| %.4g", probe, trained, init)
}

// putSmallDataset stores a dataset of 14 colour images of p's first two classes (12
// train, 1 val, 1 test) for a first training and a fine-tune.
func putSmallDataset(t *testing.T, st objstore.Store, p *project.Project) {
	t.Helper()
	ctx := context.Background()
	var d project.Dataset
	d.Seq = 1
	for i := range 14 {
		split := map[int]string{12: "val", 13: "test"}[i]
		im := raster.NewC(64, 48, 3)
		for j := range im.Pix {
			im.Pix[j] = float32((i*7+j*13)%255) / 255
		}
		key, _, err := objstore.PutContent(ctx, st, project.ImagePrefix(p.ID), im.EncodePNG(), "image/png")
		if err != nil {
			t.Fatal(err)
		}
		if i < 12 {
			split = "train"
		}
		d.Entries = append(d.Entries, project.DatasetEntry{ID: fmt.Sprintf("e%d", i), Split: split,
			Labels: []project.Label{{Class: p.Classes[i%2]}}, Image: key, Seq: 1})
	}
	if _, err := objstore.PutJSON(ctx, st, project.DatasetKey(p.ID), &d, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// newCPUService is a retrain service on the CPU over store, with a fresh signing key, no
// Kafka producer and a private cache.
func newCPUService(t *testing.T, store objstore.Store) *Service {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewService(ServiceConfig{Backend: "cpu", CacheDir: t.TempDir(), Key: key}, store, nil, prometheus.NewRegistry(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return s
}
