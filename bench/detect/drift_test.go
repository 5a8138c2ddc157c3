package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// TestDriftTableCellsFolder: with -drift-cells the table takes the drops (step 0) from
// -out/drift and the fine-tune cells from the subfolder only, not the earlier ones
// beside the drops.
func TestDriftTableCellsFolder(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "keep-last")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(in string, c driftCell) {
		t.Helper()
		raw, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		name := c.Preset + "-seed1-step" + string(rune('0'+c.Step)) + ".json"
		if err := os.WriteFile(filepath.Join(in, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cell := func(step int, drift float64) driftCell {
		return driftCell{Preset: "far", Step: step, Network: "n", Input: "160x128", DriftMAP50: drift, CleanMAP50: 0.25}
	}
	write(dir, cell(0, 0.132))
	write(dir, cell(1, 0.135)) // the earlier rule's cell
	write(sub, cell(1, 0.171))

	old, err := driftTable(dir, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(old, "| far | 0.250 | 0.132 | -0.118 | 0.135 |") {
		t.Fatalf("the earlier cells' table:\n%s", old)
	}
	got, err := driftTable(dir, sub)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "| far | 0.250 | 0.132 | -0.118 | 0.171 |") || strings.Contains(got, "0.135") {
		t.Fatalf("the subfolder's table:\n%s", got)
	}
}

// TestParamsRoundTrip: writeParams' file reads back into a network of the same shapes,
// leaves nothing else in the folder, and a network of other shapes refuses it.
func TestParamsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cell.params")
	specs := []nn.ParamSpec{{Name: "w"}, {Name: "b"}}
	want := &nn.Params{Specs: specs, Values: [][]float32{{1, -2, 3.5}, {0.25}}}
	if err := writeParams(path, want); err != nil {
		t.Fatal(err)
	}
	got := &nn.Params{Specs: specs, Values: [][]float32{make([]float32, 3), make([]float32, 1)}}
	if err := readParams(path, got); err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got.Values, want.Values, slices.Equal[[]float32]) {
		t.Fatalf("read back %v, wrote %v", got.Values, want.Values)
	}
	if des, _ := os.ReadDir(dir); len(des) != 1 {
		t.Errorf("folder holds %d entries, want only the params file", len(des))
	}
	other := &nn.Params{Specs: specs, Values: [][]float32{make([]float32, 2), make([]float32, 1)}}
	if err := readParams(path, other); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a network of other shapes read the file: %v", err)
	}
}

// TestDriftRefusesCellsOfAnotherBaseModel: cells saved from one -drift-base-model are
// refused by a run from another (or from the table's own base), naming the file; the
// same model goes on.
func TestDriftRefusesCellsOfAnotherBaseModel(t *testing.T) {
	dir := t.TempDir()
	raw, err := json.Marshal(driftCell{Preset: "far", Step: 1, BaseModel: "a.params"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "s-far-320x256-base2000-seed1-step1.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "s-far-320x256-base2000-seed1-step1.params"), []byte("gob"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkBaseModel("a.params", dir); err != nil {
		t.Fatalf("the same base model: %v", err)
	}
	for _, other := range []string{"b.params", ""} {
		err := checkBaseModel(other, dir)
		if err == nil || !strings.Contains(err.Error(), "step1.json") {
			t.Fatalf("base model %q: got %v, want a refusal naming the cell", other, err)
		}
	}
}
