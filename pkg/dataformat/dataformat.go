// Package dataformat reads and writes datasets in the formats other tools use: COCO,
// YOLO (Ultralytics layout), Pascal VOC and Label Studio tasks for export; COCO, YOLO,
// Pascal VOC and class folders for import, from a zip archive or a directory (any
// fs.FS). Boxes are normalised in edgeloop and in pixels of the original image in the
// files.
package dataformat

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"strings"

	"github.com/edgeloop/edgeloop/pkg/project"
)

// Export formats.
const (
	FormatCOCO        = "coco"
	FormatYOLO        = "yolo"
	FormatVOC         = "voc"
	FormatLabelStudio = "labelstudio"
)

// Item is one dataset entry with what an export needs.
type Item struct {
	project.DatasetEntry
	// Record is the example record (content type and image size are used).
	Record *project.ExampleRecord
}

func ext(contentType string) string {
	if contentType == "image/png" {
		return ".png"
	}
	return ".jpg"
}

func (it Item) file() string { return it.ID + ext(it.Record.ContentType) }

// pixels converts a normalised box to pixel x, y, w, h.
func pixels(b *project.Box, w, h int) (x, y, bw, bh float64) {
	return float64(b.X0) * float64(w), float64(b.Y0) * float64(h), float64(b.X1-b.X0) * float64(w), float64(b.Y1-b.Y0) * float64(h)
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

type cocoFile struct {
	Info        map[string]any   `json:"info"`
	Images      []cocoImage      `json:"images"`
	Annotations []cocoAnnotation `json:"annotations"`
	Categories  []cocoCategory   `json:"categories"`
}

type cocoImage struct {
	ID       int    `json:"id"`
	FileName string `json:"file_name"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
}

type cocoAnnotation struct {
	ID         int       `json:"id"`
	ImageID    int       `json:"image_id"`
	CategoryID int       `json:"category_id"`
	BBox       []float64 `json:"bbox"`
	Area       float64   `json:"area"`
	IsCrowd    int       `json:"iscrowd"`
}

type cocoCategory struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

func splitsOf(items []Item) map[string][]Item {
	out := map[string][]Item{}
	for _, it := range items {
		out[it.Split] = append(out[it.Split], it)
	}
	return out
}

// writeCOCO writes <split>/annotations.json and <split>/images/. Classification
// labels become whole-image boxes (COCO has no classification), marked in info.task.
func writeCOCO(p *project.Project, items []Item, image func(string, Item) error, file func(string, []byte) error) error {
	idx := p.ClassIndex()
	for split, its := range splitsOf(items) {
		cf := cocoFile{Info: map[string]any{"description": "edgeloop project " + p.ID, "task": p.Task, "split": split}}
		for i, c := range p.Classes {
			cf.Categories = append(cf.Categories, cocoCategory{ID: i + 1, Name: c})
		}
		for i, it := range its {
			w, h := it.Record.Width, it.Record.Height
			cf.Images = append(cf.Images, cocoImage{ID: i + 1, FileName: "images/" + it.file(), Width: w, Height: h})
			for _, l := range it.Labels {
				b := l.Box
				if b == nil {
					b = &project.Box{X0: 0, Y0: 0, X1: 1, Y1: 1}
				}
				x, y, bw, bh := pixels(b, w, h)
				cf.Annotations = append(cf.Annotations, cocoAnnotation{ID: len(cf.Annotations) + 1, ImageID: i + 1,
					CategoryID: idx[l.Class] + 1, BBox: []float64{round2(x), round2(y), round2(bw), round2(bh)}, Area: round2(bw * bh)})
			}
			if err := image(split+"/images/"+it.file(), it); err != nil {
				return err
			}
		}
		b, _ := json.MarshalIndent(cf, "", " ")
		if err := file(split+"/annotations.json", b); err != nil {
			return err
		}
	}
	return nil
}

// writeYOLO writes Ultralytics YOLO: data.yaml, images/<split>/, labels/<split>/*.txt
// ("class cx cy w h", normalised). Classification uses Ultralytics' folder layout:
// <split>/<class>/<image>.
func writeYOLO(p *project.Project, items []Item, image func(string, Item) error, file func(string, []byte) error) error {
	idx := p.ClassIndex()
	if p.Task == "classify" {
		for _, it := range items {
			if len(it.Labels) == 0 {
				continue
			}
			if err := image(it.Split+"/"+it.Labels[0].Class+"/"+it.file(), it); err != nil {
				return err
			}
		}
		return nil
	}
	var y strings.Builder
	fmt.Fprintf(&y, "# edgeloop project %s\npath: .\ntrain: images/train\nval: images/val\ntest: images/test\nnames:\n", p.ID)
	for i, c := range p.Classes {
		fmt.Fprintf(&y, "  %d: %q\n", i, c)
	}
	if err := file("data.yaml", []byte(y.String())); err != nil {
		return err
	}
	for _, it := range items {
		var lines strings.Builder
		for _, l := range it.Labels {
			if l.Box == nil {
				continue
			}
			b := l.Box
			fmt.Fprintf(&lines, "%d %.6f %.6f %.6f %.6f\n", idx[l.Class], (b.X0+b.X1)/2, (b.Y0+b.Y1)/2, b.X1-b.X0, b.Y1-b.Y0)
		}
		if err := file("labels/"+it.Split+"/"+it.ID+".txt", []byte(lines.String())); err != nil {
			return err
		}
		if err := image("images/"+it.Split+"/"+it.file(), it); err != nil {
			return err
		}
	}
	return nil
}

type vocAnnotation struct {
	XMLName  xml.Name `xml:"annotation"`
	Folder   string   `xml:"folder"`
	Filename string   `xml:"filename"`
	Size     struct {
		Width  int `xml:"width"`
		Height int `xml:"height"`
		Depth  int `xml:"depth"`
	} `xml:"size"`
	Objects []vocObject `xml:"object"`
}

type vocObject struct {
	Name      string `xml:"name"`
	Difficult int    `xml:"difficult"`
	BndBox    struct {
		XMin int `xml:"xmin"`
		YMin int `xml:"ymin"`
		XMax int `xml:"xmax"`
		YMax int `xml:"ymax"`
	} `xml:"bndbox"`
}

// writeVOC writes Pascal VOC: Annotations/*.xml, JPEGImages/, ImageSets/Main/<split>.txt.
func writeVOC(_ *project.Project, items []Item, image func(string, Item) error, file func(string, []byte) error) error {
	sets := map[string][]string{}
	for _, it := range items {
		a := vocAnnotation{Folder: "JPEGImages", Filename: it.file()}
		a.Size.Width, a.Size.Height, a.Size.Depth = it.Record.Width, it.Record.Height, max(1, it.Record.Channels)
		for _, l := range it.Labels {
			b := l.Box
			if b == nil {
				b = &project.Box{X0: 0, Y0: 0, X1: 1, Y1: 1}
			}
			o := vocObject{Name: l.Class}
			o.BndBox.XMin = int(math.Round(float64(b.X0)*float64(it.Record.Width))) + 1
			o.BndBox.YMin = int(math.Round(float64(b.Y0)*float64(it.Record.Height))) + 1
			o.BndBox.XMax = int(math.Round(float64(b.X1) * float64(it.Record.Width)))
			o.BndBox.YMax = int(math.Round(float64(b.Y1) * float64(it.Record.Height)))
			a.Objects = append(a.Objects, o)
		}
		b, _ := xml.MarshalIndent(a, "", "  ")
		if err := file("Annotations/"+it.ID+".xml", b); err != nil {
			return err
		}
		if err := image("JPEGImages/"+it.file(), it); err != nil {
			return err
		}
		sets[it.Split] = append(sets[it.Split], it.ID)
	}
	for split, ids := range sets {
		if err := file("ImageSets/Main/"+split+".txt", []byte(strings.Join(ids, "\n")+"\n")); err != nil {
			return err
		}
	}
	return nil
}

// writeLabelStudio writes tasks.json for project.Label Studio, with the annotations and the
// edge model's predictions as pre-annotations (model_version, score).
func writeLabelStudio(p *project.Project, items []Item, image func(string, Item) error, file func(string, []byte) error) error {
	result := func(l project.Label, w, h int) map[string]any {
		if l.Box == nil {
			return map[string]any{"type": "choices", "from_name": "class", "to_name": "image", "value": map[string]any{"choices": []string{l.Class}}}
		}
		b := l.Box
		return map[string]any{"type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": w, "original_height": h,
			"value": map[string]any{"x": 100 * b.X0, "y": 100 * b.Y0, "width": 100 * (b.X1 - b.X0), "height": 100 * (b.Y1 - b.Y0), "rectanglelabels": []string{l.Class}}}
	}
	var tasks []map[string]any
	for i, it := range items {
		var ann, pred []map[string]any
		for _, l := range it.Labels {
			ann = append(ann, result(l, it.Record.Width, it.Record.Height))
		}
		var score float32
		for _, pr := range it.Record.Predictions {
			pred = append(pred, result(project.Label{Class: pr.Class, Box: pr.Box}, it.Record.Width, it.Record.Height))
			score = max(score, pr.Confidence)
		}
		t := map[string]any{"id": i + 1, "data": map[string]any{"image": "images/" + it.file(), "edgeloop_id": it.ID, "split": it.Split},
			"annotations": []map[string]any{{"result": ann}}}
		if len(pred) > 0 {
			t["predictions"] = []map[string]any{{"model_version": fmt.Sprintf("v%d", it.Record.ModelVersion), "score": score, "result": pred}}
		}
		tasks = append(tasks, t)
		if err := image("images/"+it.file(), it); err != nil {
			return err
		}
	}
	b, _ := json.MarshalIndent(tasks, "", " ")
	return file("tasks.json", b)
}

// SeedImage is one image of a seed dataset built in memory.
type SeedImage struct {
	ID          string
	Data        []byte
	ContentType string
	Width       int
	Height      int
	Labels      []project.Label
	// Split is train, val or test ("": decided by the split rule on import).
	Split string
}

// SeedArchive writes seed images as a COCO zip that Import takes.
func SeedArchive(p *project.Project, seeds []SeedImage) ([]byte, error) {
	items := make([]Item, len(seeds))
	data := map[string][]byte{}
	for i, s := range seeds {
		items[i] = Item{DatasetEntry: project.DatasetEntry{ID: s.ID, Split: s.Split, Labels: s.Labels},
			Record: &project.ExampleRecord{ContentType: s.ContentType, Width: s.Width, Height: s.Height}}
		data[s.ID] = s.Data
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	err := writeCOCO(p, items, func(name string, it Item) error {
		f, err := zw.Create(name)
		if err == nil {
			_, err = f.Write(data[it.ID])
		}
		return err
	}, func(name string, b []byte) error {
		f, err := zw.Create(name)
		if err == nil {
			_, err = f.Write(b)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Write writes items in format: image is called for each image file to write, file for
// each annotation file.
func Write(format string, p *project.Project, items []Item, image func(name string, it Item) error, file func(name string, data []byte) error) error {
	switch format {
	case FormatCOCO:
		return writeCOCO(p, items, image, file)
	case FormatYOLO:
		return writeYOLO(p, items, image, file)
	case FormatVOC:
		return writeVOC(p, items, image, file)
	case FormatLabelStudio:
		return writeLabelStudio(p, items, image, file)
	}
	return fmt.Errorf("%w: format %q: want coco, yolo, voc or labelstudio", project.ErrInvalid, format)
}
