package dataformat

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// TestYAMLNames: the three ways an Ultralytics data.yaml lists its classes.
func TestYAMLNames(t *testing.T) {
	for _, c := range []struct {
		doc  string
		want []string
	}{
		{"path: .\ntrain: images/train\nnames:\n  0: \"can\"\n  1: box\n  2: 'bag'\nnc: 3\n", []string{"can", "box", "bag"}},
		{"names:\n- can\n- box\n", []string{"can", "box"}},
		{"nc: 2\nnames: ['can', \"box\"]\n", []string{"can", "box"}},
		{"train: x\n", nil},
	} {
		got, err := yamlNames(c.doc)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%q: %q, %v; want %q", c.doc, got, err, c.want)
		}
	}
	if _, err := yamlNames("names:\n  0: a\n  5: b\n"); err == nil {
		t.Error("names with a gap accepted")
	}
}

// TestOpenLayouts: the format is found from the files, a zip's top folder is
// descended into, Roboflow's <split>/images + <split>/labels and "valid" split read,
// and what is wrong with one image is a problem naming it, not an error.
func TestOpenLayouts(t *testing.T) {
	img := &fstest.MapFile{Data: []byte("x")}
	fsys := fstest.MapFS{
		"export/data.yaml":                 {Data: []byte("names: [can, box]\n")},
		"export/train/images/a.jpg":        img,
		"export/train/labels/a.txt":        {Data: []byte("1 0.5 0.5 0.2 0.2\n")},
		"export/valid/images/b.png":        img,
		"export/valid/labels/b.txt":        {Data: []byte("0 0.5 0.5 0.2 0.2\n0 0.1\n")},
		"export/valid/images/c.jpg":        img,
		"export/__MACOSX/train/images/._a": img,
	}
	root, err := Root(fsys)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Open(root, FormatAuto, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != FormatYOLO || d.Task != "detect" || !slices.Equal(d.Classes, []string{"can", "box"}) {
		t.Fatalf("format %s task %s classes %v", d.Format, d.Task, d.Classes)
	}
	if len(d.Entries) != 1 || d.Entries[0].Name != "train/images/a.jpg" || d.Entries[0].Split != "train" || d.Entries[0].Labels[0].Class != "box" {
		t.Fatalf("entries %+v", d.Entries)
	}
	var probs []string
	for _, p := range d.Problems {
		probs = append(probs, p.String())
	}
	if len(probs) != 2 || !strings.Contains(probs[0], "valid/images/b.png: valid/labels/b.txt: line 2") || !strings.Contains(probs[1], "valid/images/c.jpg: no label file") {
		t.Fatalf("problems %q", probs)
	}
	for names, want := range map[string]string{"a/annotations.json": FormatCOCO, "Annotations/x.xml": FormatVOC, "cat/x.jpg": FormatFolders, "labels/x.txt": FormatYOLO} {
		if got := DetectFormat([]string{names}); got != want {
			t.Errorf("%s: format %s, want %s", names, got, want)
		}
	}
	if _, err := Open(fsys, FormatFolders, ReadOptions{Task: "detect"}); err == nil || !strings.Contains(err.Error(), "classify layout") {
		t.Errorf("class folders for detection: %v", err)
	}
}
