package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// TestTablesSkipModelsAndCheckpoints: the tables read the cells' JSON only, not the
// model saved beside each cell nor a stopped cell's checkpoint.
func TestTablesSkipModelsAndCheckpoints(t *testing.T) {
	dir := t.TempDir()
	raw, err := json.Marshal(cell{Table: "sizes", Network: "mobilenetv2-s-det", Size: "s", Input: "320x256", TrainImages: 2000,
		Start: "pretrained", MAP50: 0.882, MAP5095: 0.698, APSmall: 0.552, APMedium: 0.867, APLarge: 0.772})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"sizes-colour-s-320x256-2000-pretrained-colour-seed1.json":   raw,
		"sizes-colour-s-320x256-2000-pretrained-colour-seed1.params": []byte("gob"),
		"sizes-colour-n-320x256-2000-pretrained-colour-seed1.ckpt":   []byte("checkpoint"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := printTables(dir)
	if err != nil {
		t.Fatalf("tables: %v", err)
	}
	if !strings.Contains(got, "mobilenetv2-s-det") || !strings.Contains(got, "0.882") {
		t.Fatalf("the cell is missing from the tables:\n%s", got)
	}
}

// TestPyramidKeepsCellsApart: a P2 run's cells, drift cells and base model have names
// of their own, so a P3 run in the same -out never resumes from them (the tables list
// both, told apart by the network's name); P3's names are those cells had before the
// pyramid flag.
func TestPyramidKeepsCellsApart(t *testing.T) {
	paths := func(pyramid string) []string {
		d := &driftBench{bench: &bench{o: options{pyramid: pyramid, w: 320, h: 256, seed: 1}}, do: driftOptions{size: "s", base: 2000}, dir: "d", cells: "c"}
		return []string{d.cellPath("far", 2, 1), d.paramsPath("far", 0, 0)}
	}
	if got, want := paths(nn.PyramidP3), []string{"c/s-far-320x256-base2000-seed2-step1.json", "d/base-s-320x256-2000-seed1.params"}; !slices.Equal(got, want) {
		t.Fatalf("P3 names %v, want %v", got, want)
	}
	if got, want := paths(nn.PyramidP2), []string{"c/s-p2-far-320x256-base2000-seed2-step1.json", "d/base-s-p2-320x256-2000-seed1.params"}; !slices.Equal(got, want) {
		t.Fatalf("P2 names %v, want %v", got, want)
	}
}

// TestNetworkFromBackbone: a pretrained cell's network is the backbone's size at the
// run's pyramid, and a backbone of another size is refused naming both.
func TestNetworkFromBackbone(t *testing.T) {
	bb := filepath.Join("..", "..", "pkg", "nn", "weights", "testdata", "mobilenetv2-035.safetensors") // width 0.35: size n
	for _, pyr := range nn.Pyramids() {
		b := &bench{o: options{pyramid: pyr, w: 64, h: 64, seed: 1}, classes: []string{"a", "b"}, log: zap.NewNop()}
		a, p, err := b.network("n", bb)
		if err != nil {
			t.Fatalf("%s: %v", pyr, err)
		}
		want, _ := nn.DetectorPyramid(nn.MobileNetV2, "n", pyr, 64, 64, 3, 2)
		if a.Name != want.Name || len(a.Levels) != len(want.Levels) || len(p.Values) == 0 {
			t.Fatalf("%s: %s with %d levels, want %s with %d", pyr, a.Name, len(a.Levels), want.Name, len(want.Levels))
		}
		if _, _, err := b.network("s", bb); err == nil || !strings.Contains(err.Error(), "not size s") {
			t.Fatalf("%s: an n backbone for size s: %v", pyr, err)
		}
	}
}
