package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
