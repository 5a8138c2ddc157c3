package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
