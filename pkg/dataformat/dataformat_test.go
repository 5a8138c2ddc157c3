package dataformat

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"path"
	"strings"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/project"
)

// scenes are detection entries on non-square colour images as the curator holds them:
// a 640×480 scene of 100 boxes, a 333×500 portrait one of 3 (odd sides, boxes at
// fractional pixels, one touching the corner), a 1280×720 one without any box, a
// 160×128 PNG of 1; in three splits.
func scenes() (*project.Project, []Item) {
	p := &project.Project{ID: "aisle", Task: "detect", Classes: []string{"cup", "box", "can", "jar"}}
	r := rand.New(rand.NewPCG(5, 6))
	box := func(w, h int) *project.Box {
		x0, y0 := r.Float32()*0.8, r.Float32()*0.8
		return &project.Box{X0: x0, Y0: y0, X1: x0 + 4/float32(w) + r.Float32()*(1-x0-4/float32(w)), Y1: y0 + 4/float32(h) + r.Float32()*(1-y0-4/float32(h))}
	}
	item := func(id, split string, w, h, n int, ct string) Item {
		it := Item{DatasetEntry: project.DatasetEntry{ID: id, Split: split},
			Record: &project.ExampleRecord{ID: id, ContentType: ct, Width: w, Height: h, Channels: 3, ModelVersion: 2}}
		for i := 0; i < n; i++ {
			it.Labels = append(it.Labels, project.Label{Class: p.Classes[i%4], Box: box(w, h)})
		}
		return it
	}
	crowd := item("crowd", "train", 640, 480, 100, "image/jpeg")
	portrait := item("portrait", "val", 333, 500, 3, "image/jpeg")
	portrait.Labels[2].Box = &project.Box{X0: 0.4 / 333, Y0: 0, X1: 1, Y1: 1}
	portrait.Record.Predictions = []project.Prediction{{Class: "box", Confidence: 0.4, Box: &project.Box{X0: 0.1, Y0: 0.2, X1: 0.3, Y1: 0.9}}}
	return p, []Item{crowd, portrait, item("empty", "train", 1280, 720, 0, "image/jpeg"), item("small", "test", 160, 128, 1, "image/png")}
}

// archive writes items in format into a zip (an image's bytes are its id) and returns
// it as the curator's import sees it.
func archive(t *testing.T, format string, p *project.Project, items []Item) fs.FS {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	put := func(name string, b []byte) error {
		f, err := zw.Create(name)
		if err == nil {
			_, err = f.Write(b)
		}
		return err
	}
	if err := Write(format, p, items, func(name string, it Item) error { return put(name, []byte(it.ID)) }, put); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return zr
}

func read(t *testing.T, fsys fs.FS, name string) []byte {
	t.Helper()
	b, err := readFile(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// px is a normalised box in pixels of a w×h image.
func px(b *project.Box, w, h int) [4]float64 {
	return [4]float64{float64(b.X0) * float64(w), float64(b.Y0) * float64(h), float64(b.X1) * float64(w), float64(b.Y1) * float64(h)}
}

// near reports whether two boxes in pixels are within tol pixels on every side.
func near(a, b [4]float64, tol float64) bool {
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return false
		}
	}
	return true
}

// TestImportRoundTripInOriginalPixels: COCO and YOLO exports read back by their imports
// give every box of every image — 100 on one, none on another — at the same place in
// the original image's pixels (within 0.011 px for COCO's two decimals of x and w, 0.001 px for
// YOLO's six), in its split, of its class; the image without boxes comes back as a
// negative example rather than being dropped.
func TestImportRoundTripInOriginalPixels(t *testing.T) {
	p, items := scenes()
	for _, c := range []struct {
		format string
		tol    float64
	}{{FormatCOCO, 0.011}, {FormatYOLO, 0.001}} {
		t.Run(c.format, func(t *testing.T) {
			entries, err := Read(c.format, p, archive(t, c.format, p, items))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]Entry{}
			for _, e := range entries {
				got[strings.TrimSuffix(path.Base(e.Name), path.Ext(e.Name))] = e
			}
			if len(got) != len(items) {
				t.Fatalf("%d images read back, want %d", len(got), len(items))
			}
			for _, it := range items {
				e := got[it.ID]
				if e.Split != it.Split || e.ContentType != it.Record.ContentType || len(e.Labels) != len(it.Labels) {
					t.Fatalf("%s: split %q, %s, %d boxes; want %q, %s, %d", it.ID, e.Split, e.ContentType, len(e.Labels), it.Split, it.Record.ContentType, len(it.Labels))
				}
				if data, err := e.Read(); err != nil || string(data) != it.ID {
					t.Fatalf("%s: image %q, %v", it.ID, data, err)
				}
				w, h := it.Record.Width, it.Record.Height
				for i, l := range it.Labels {
					g := e.Labels[i]
					if g.Class != l.Class || g.Box == nil || !near(px(g.Box, w, h), px(l.Box, w, h), c.tol) {
						t.Fatalf("%s box %d: %s %v px, want %s %v px", it.ID, i, g.Class, px(g.Box, w, h), l.Class, px(l.Box, w, h))
					}
				}
			}
		})
	}
}

// TestExportsInOriginalPixels: each export puts the boxes where the original image has
// them, in its own convention — COCO [x, y, w, h] in pixels with the image's size,
// VOC 1-based inclusive integer corners with the size and 3 channels, Label Studio
// percentages of original_width × original_height (annotations and the model's
// predictions), YOLO centre and size normalised.
func TestExportsInOriginalPixels(t *testing.T) {
	p, items := scenes()
	portrait := items[1]
	want := px(portrait.Labels[0].Box, 333, 500)

	files := archive(t, FormatCOCO, p, items)
	var cf cocoFile
	if err := json.Unmarshal(read(t, files, "val/annotations.json"), &cf); err != nil {
		t.Fatal(err)
	}
	if len(cf.Images) != 1 || cf.Images[0].Width != 333 || cf.Images[0].Height != 500 || len(cf.Annotations) != 3 {
		t.Fatalf("coco val: %+v, %d annotations", cf.Images, len(cf.Annotations))
	}
	bb := cf.Annotations[0].BBox
	if !near([4]float64{bb[0], bb[1], bb[0] + bb[2], bb[1] + bb[3]}, want, 0.01) || cf.Categories[0].Name != "cup" || cf.Annotations[0].CategoryID != 1 {
		t.Fatalf("coco: bbox %v, want %v px", bb, want)
	}
	if err := json.Unmarshal(read(t, files, "train/annotations.json"), &cf); err != nil {
		t.Fatal(err)
	}
	if len(cf.Images) != 2 || len(cf.Annotations) != 100 {
		t.Fatalf("coco train: %d images, %d annotations; want 2 (one without boxes) and 100", len(cf.Images), len(cf.Annotations))
	}

	files = archive(t, FormatVOC, p, items)
	var va vocAnnotation
	if err := xml.Unmarshal(read(t, files, "Annotations/portrait.xml"), &va); err != nil {
		t.Fatal(err)
	}
	if va.Size.Width != 333 || va.Size.Height != 500 || va.Size.Depth != 3 || len(va.Objects) != 3 {
		t.Fatalf("voc: %+v", va)
	}
	o := va.Objects[0].BndBox
	if !near([4]float64{float64(o.XMin - 1), float64(o.YMin - 1), float64(o.XMax), float64(o.YMax)}, want, 0.5) {
		t.Fatalf("voc: %+v, want %v px (1-based)", o, want)
	}
	if c := va.Objects[2].BndBox; c.XMin != 1 || c.YMin != 1 || c.XMax != 333 || c.YMax != 500 {
		t.Fatalf("voc: a box over the whole portrait is %+v, want 1,1–333,500", c)
	}
	var crowd vocAnnotation
	if err := xml.Unmarshal(read(t, files, "Annotations/crowd.xml"), &crowd); err != nil || len(crowd.Objects) != 100 {
		t.Fatalf("voc crowd: %v, %d objects", err, len(crowd.Objects))
	}

	files = archive(t, FormatLabelStudio, p, items)
	var tasks []struct {
		Data        map[string]any `json:"data"`
		Annotations []struct {
			Result []struct {
				OriginalWidth  int            `json:"original_width"`
				OriginalHeight int            `json:"original_height"`
				Value          map[string]any `json:"value"`
			} `json:"result"`
		} `json:"annotations"`
		Predictions []struct {
			Result []struct {
				Value map[string]any `json:"value"`
			} `json:"result"`
		} `json:"predictions"`
	}
	if err := json.Unmarshal(read(t, files, "tasks.json"), &tasks); err != nil {
		t.Fatal(err)
	}
	lsPx := func(v map[string]any, w, h float64) [4]float64 {
		x, y := v["x"].(float64)*w/100, v["y"].(float64)*h/100
		return [4]float64{x, y, x + v["width"].(float64)*w/100, y + v["height"].(float64)*h/100}
	}
	for _, tk := range tasks {
		if tk.Data["edgeloop_id"] != "portrait" {
			continue
		}
		r := tk.Annotations[0].Result[0]
		if r.OriginalWidth != 333 || r.OriginalHeight != 500 || !near(lsPx(r.Value, 333, 500), want, 0.001) {
			t.Fatalf("label studio: %dx%d %v, want 333x500 %v px", r.OriginalWidth, r.OriginalHeight, r.Value, want)
		}
		if pr := tk.Predictions[0].Result[0].Value; !near(lsPx(pr, 333, 500), [4]float64{33.3, 100, 99.9, 450}, 0.001) {
			t.Fatalf("label studio prediction %v", pr)
		}
	}

	files = archive(t, FormatYOLO, p, items)
	line := strings.Fields(strings.Split(string(read(t, files, "labels/val/portrait.txt")), "\n")[0])
	var v [5]float64
	for i := range v {
		fmt.Sscan(line[i], &v[i])
	}
	if !near([4]float64{(v[1] - v[3]/2) * 333, (v[2] - v[4]/2) * 500, (v[1] + v[3]/2) * 333, (v[2] + v[4]/2) * 500}, want, 0.001) {
		t.Fatalf("yolo: %v, want %v px", line, want)
	}
	if b := read(t, files, "labels/train/empty.txt"); len(b) != 0 {
		t.Fatalf("yolo: the image without boxes has labels %q", b)
	}
}
