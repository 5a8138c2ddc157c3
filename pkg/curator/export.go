package curator

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/raster"
)

// Export formats.
const (
	FormatCOCO        = "coco"
	FormatYOLO        = "yolo"
	FormatVOC         = "voc"
	FormatLabelStudio = "labelstudio"
)

// exportItem is one dataset entry with what an export needs.
type exportItem struct {
	DatasetEntry
	rec *ExampleRecord
}

func ext(contentType string) string {
	if contentType == "image/png" {
		return ".png"
	}
	return ".jpg"
}

func (it exportItem) file() string { return it.ID + ext(it.rec.ContentType) }

// pixels converts a normalised box to pixel x, y, w, h.
func pixels(b *Box, w, h int) (x, y, bw, bh float64) {
	return float64(b.X0) * float64(w), float64(b.Y0) * float64(h), float64(b.X1-b.X0) * float64(w), float64(b.Y1-b.Y0) * float64(h)
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// exportSet is what an export writes, checked before the first byte goes out.
type exportSet struct {
	p      *Project
	format string
	items  []exportItem
}

// prepareExport checks the arguments and gathers the entries of the dataset (or one
// split).
func (c *Curator) prepareExport(ctx context.Context, project, format, split string) (*exportSet, error) {
	p, err := c.st.Project(ctx, project)
	if err != nil {
		return nil, err
	}
	if split != "" && split != "train" && split != "val" && split != "test" {
		return nil, fmt.Errorf("%w: split %q: want train, val or test", ErrInvalid, split)
	}
	switch format {
	case FormatCOCO, FormatYOLO, FormatVOC, FormatLabelStudio:
	default:
		return nil, fmt.Errorf("%w: format %q: want coco, yolo, voc or labelstudio", ErrInvalid, format)
	}
	d, err := c.st.Dataset(ctx, project)
	if err != nil {
		return nil, err
	}
	set := &exportSet{p: p, format: format}
	for _, e := range d.Entries {
		if split != "" && e.Split != split {
			continue
		}
		rec, err := c.st.Example(ctx, project, e.ID)
		if err != nil {
			return nil, err
		}
		set.items = append(set.items, exportItem{DatasetEntry: e, rec: rec})
	}
	return set, nil
}

// Export streams the dataset (or one split) as a zip in the given format.
func (c *Curator) Export(ctx context.Context, project, format, split string, w io.Writer) error {
	set, err := c.prepareExport(ctx, project, format, split)
	if err != nil {
		return err
	}
	return c.write(ctx, set, w)
}

func (c *Curator) write(ctx context.Context, set *exportSet, w io.Writer) error {
	p, items := set.p, set.items
	var err error
	zw := zip.NewWriter(w)
	image := func(name string, it exportItem) error {
		o, err := c.st.S.Get(ctx, it.Image)
		if err != nil {
			return err
		}
		f, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: time.Now()})
		if err != nil {
			return err
		}
		_, err = f.Write(o.Data)
		return err
	}
	file := func(name string, data []byte) error {
		f, err := zw.Create(name)
		if err != nil {
			return err
		}
		_, err = f.Write(data)
		return err
	}
	switch set.format {
	case FormatCOCO:
		err = exportCOCO(p, items, image, file)
	case FormatYOLO:
		err = exportYOLO(p, items, image, file)
	case FormatVOC:
		err = exportVOC(p, items, image, file)
	case FormatLabelStudio:
		err = exportLabelStudio(p, items, image, file)
	}
	if err != nil {
		return err
	}
	return zw.Close()
}

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

func splitsOf(items []exportItem) map[string][]exportItem {
	out := map[string][]exportItem{}
	for _, it := range items {
		out[it.Split] = append(out[it.Split], it)
	}
	return out
}

// exportCOCO writes <split>/annotations.json and <split>/images/. Classification
// labels become whole-image boxes (COCO has no classification), marked in info.task.
func exportCOCO(p *Project, items []exportItem, image func(string, exportItem) error, file func(string, []byte) error) error {
	idx := p.ClassIndex()
	for split, its := range splitsOf(items) {
		cf := cocoFile{Info: map[string]any{"description": "edgeloop project " + p.ID, "task": p.Task, "split": split}}
		for i, c := range p.Classes {
			cf.Categories = append(cf.Categories, cocoCategory{ID: i + 1, Name: c})
		}
		for i, it := range its {
			w, h := it.rec.Width, it.rec.Height
			cf.Images = append(cf.Images, cocoImage{ID: i + 1, FileName: "images/" + it.file(), Width: w, Height: h})
			for _, l := range it.Labels {
				b := l.Box
				if b == nil {
					b = &Box{X0: 0, Y0: 0, X1: 1, Y1: 1}
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

// exportYOLO writes Ultralytics YOLO: data.yaml, images/<split>/, labels/<split>/*.txt
// ("class cx cy w h", normalised). Classification uses Ultralytics' folder layout:
// <split>/<class>/<image>.
func exportYOLO(p *Project, items []exportItem, image func(string, exportItem) error, file func(string, []byte) error) error {
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

// exportVOC writes Pascal VOC: Annotations/*.xml, JPEGImages/, ImageSets/Main/<split>.txt.
func exportVOC(_ *Project, items []exportItem, image func(string, exportItem) error, file func(string, []byte) error) error {
	sets := map[string][]string{}
	for _, it := range items {
		a := vocAnnotation{Folder: "JPEGImages", Filename: it.file()}
		a.Size.Width, a.Size.Height, a.Size.Depth = it.rec.Width, it.rec.Height, 1
		for _, l := range it.Labels {
			b := l.Box
			if b == nil {
				b = &Box{X0: 0, Y0: 0, X1: 1, Y1: 1}
			}
			o := vocObject{Name: l.Class}
			o.BndBox.XMin = int(math.Round(float64(b.X0)*float64(it.rec.Width))) + 1
			o.BndBox.YMin = int(math.Round(float64(b.Y0)*float64(it.rec.Height))) + 1
			o.BndBox.XMax = int(math.Round(float64(b.X1) * float64(it.rec.Width)))
			o.BndBox.YMax = int(math.Round(float64(b.Y1) * float64(it.rec.Height)))
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

// exportLabelStudio writes tasks.json for Label Studio, with the annotations and the
// edge model's predictions as pre-annotations (model_version, score).
func exportLabelStudio(p *Project, items []exportItem, image func(string, exportItem) error, file func(string, []byte) error) error {
	result := func(l Label, w, h int) map[string]any {
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
			ann = append(ann, result(l, it.rec.Width, it.rec.Height))
		}
		var score float32
		for _, pr := range it.rec.Predictions {
			pred = append(pred, result(Label{Class: pr.Class, Box: pr.Box}, it.rec.Width, it.rec.Height))
			score = max(score, pr.Confidence)
		}
		t := map[string]any{"id": i + 1, "data": map[string]any{"image": "images/" + it.file(), "edgeloop_id": it.ID, "split": it.Split},
			"annotations": []map[string]any{{"result": ann}}}
		if len(pred) > 0 {
			t["predictions"] = []map[string]any{{"model_version": fmt.Sprintf("v%d", it.rec.ModelVersion), "score": score, "result": pred}}
		}
		tasks = append(tasks, t)
		if err := image("images/"+it.file(), it); err != nil {
			return err
		}
	}
	b, _ := json.MarshalIndent(tasks, "", " ")
	return file("tasks.json", b)
}

func (a *API) export(w http.ResponseWriter, r *http.Request) error {
	p, format, split := r.PathValue("p"), r.URL.Query().Get("format"), r.URL.Query().Get("split")
	if format == "" {
		format = FormatCOCO
	}
	set, err := a.c.prepareExport(r.Context(), p, format, split)
	if err != nil {
		return err
	}
	name := p + "-" + format
	if split != "" {
		name += "-" + split
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.zip"`)
	if err := a.c.write(r.Context(), set, w); err != nil {
		// The status is sent: all that is left is to cut the stream (a broken zip).
		a.c.log.Warn("export interrupted", zap.String("project", p), zap.Error(err))
	}
	return nil
}

// Import adds a COCO or YOLO dataset (a zip as Export writes it) as a seed: images and
// records are stored, the annotations enter the dataset in the splits the archive
// names, and BatchApproved announces them (batch id "import-…"). It returns the batch.
func (c *Curator) Import(ctx context.Context, project, format string, zipData []byte, user string) (*Batch, error) {
	p, err := c.st.Project(ctx, project)
	if err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(bytes.NewReader(zipData), int64(len(zipData)))
	if err != nil {
		return nil, fmt.Errorf("%w: not a zip archive: %v", ErrInvalid, err)
	}
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		files[path.Clean(f.Name)] = f
	}
	var entries []importEntry
	switch format {
	case FormatCOCO:
		entries, err = readCOCO(p, files)
	case FormatYOLO:
		entries, err = readYOLO(p, files)
	default:
		return nil, fmt.Errorf("%w: import format %q: want coco or yolo", ErrInvalid, format)
	}
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: the archive holds no annotated image", ErrInvalid)
	}
	now := c.now()
	b := &Batch{ID: "import-" + now.UTC().Format("20060102T150405") + "-" + uuid.NewString()[:8], Project: p.ID, State: StateApproving, CreatedAt: now,
		Audit: []AuditEntry{{At: now, User: user, Action: "import", To: StateApproving, Detail: fmt.Sprintf("%s, %d images", format, len(entries))}}}
	for _, e := range entries {
		key, _, err := objstore.PutContent(ctx, c.st.S, imagePrefix(p.ID), e.data, e.contentType)
		if err != nil {
			return nil, err
		}
		im, err := raster.Decode(e.data)
		if err != nil {
			return nil, fmt.Errorf("%w: image %s: %v", ErrInvalid, e.name, err)
		}
		id := strings.TrimSuffix(path.Base(e.name), path.Ext(e.name))
		if !exampleIDOK(id) {
			id = uuid.NewString()
		}
		rec := &ExampleRecord{ID: id, Project: p.ID, Device: "import", CapturedAt: now, ReceivedAt: now, Image: key, ContentType: e.contentType,
			Width: im.W, Height: im.H, Reasons: []Reason{{Kind: "import", Detail: "seed dataset (" + format + ")"}}}
		if _, err := objstore.PutJSON(ctx, c.st.S, exampleKey(p.ID, id), rec, objstore.PutOptions{IfNoneMatch: true}); err != nil && !errors.Is(err, objstore.ErrPrecondition) {
			return nil, err
		}
		t := now
		cls := ""
		if len(e.labels) > 0 {
			cls = e.labels[0].Class
		}
		// The archive's splits win over the split rule for a seed dataset.
		b.Items = append(b.Items, Item{ExampleID: id, Class: cls, Reason: "import", Labels: e.labels, Status: "done", AnnotatedBy: user, AnnotatedAt: &t,
			ArrivedAt: now, Split: e.split})
	}
	// Stored as approving first, like a reviewer's approval: if the curator stops
	// here, resumeApprovals completes it, with the same splits.
	if _, err := objstore.PutJSON(ctx, c.st.S, batchKey(p.ID, b.ID), b, objstore.PutOptions{IfNoneMatch: true}); err != nil {
		return nil, err
	}
	return c.completeApproval(ctx, p.ID, b, user)
}

func exampleIDOK(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

type importEntry struct {
	name, split, contentType string
	data                     []byte
	labels                   []Label
}

func readZip(f *zip.File) ([]byte, error) {
	if f.UncompressedSize64 > 64<<20 {
		return nil, fmt.Errorf("%w: %s is larger than 64 MiB", ErrInvalid, f.Name)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, f.Name, err)
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 64<<20))
}

func contentTypeOf(name string) string {
	if strings.EqualFold(path.Ext(name), ".png") {
		return "image/png"
	}
	return "image/jpeg"
}

// readCOCO reads <split>/annotations.json (or annotations.json) with its images.
func readCOCO(p *Project, files map[string]*zip.File) ([]importEntry, error) {
	var out []importEntry
	var names []string
	for n := range files {
		if path.Base(n) == "annotations.json" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: no annotations.json in the archive", ErrInvalid)
	}
	for _, n := range names {
		split := path.Dir(n)
		if split == "." {
			split = ""
		}
		b, err := readZip(files[n])
		if err != nil {
			return nil, err
		}
		var cf cocoFile
		if err := json.Unmarshal(b, &cf); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, n, err)
		}
		cats := map[int]string{}
		known := p.ClassIndex()
		for _, c := range cf.Categories {
			if _, ok := known[c.Name]; !ok {
				return nil, fmt.Errorf("%w: %s: category %q is not one of project %s's classes", ErrInvalid, n, c.Name, p.ID)
			}
			cats[c.ID] = c.Name
		}
		byImage := map[int][]cocoAnnotation{}
		for _, a := range cf.Annotations {
			byImage[a.ImageID] = append(byImage[a.ImageID], a)
		}
		for _, im := range cf.Images {
			f := files[path.Clean(path.Join(path.Dir(n), im.FileName))]
			if f == nil {
				return nil, fmt.Errorf("%w: %s: image %s is missing from the archive", ErrInvalid, n, im.FileName)
			}
			data, err := readZip(f)
			if err != nil {
				return nil, err
			}
			e := importEntry{name: im.FileName, split: splitName(split), contentType: contentTypeOf(im.FileName), data: data}
			for _, a := range byImage[im.ID] {
				cls, ok := cats[a.CategoryID]
				if !ok || len(a.BBox) != 4 || im.Width <= 0 || im.Height <= 0 {
					return nil, fmt.Errorf("%w: %s: annotation %d is malformed", ErrInvalid, n, a.ID)
				}
				l := Label{Class: cls}
				if p.Task == "detect" {
					l.Box = &Box{X0: float32(a.BBox[0] / float64(im.Width)), Y0: float32(a.BBox[1] / float64(im.Height)),
						X1: float32((a.BBox[0] + a.BBox[2]) / float64(im.Width)), Y1: float32((a.BBox[1] + a.BBox[3]) / float64(im.Height))}
				}
				e.labels = append(e.labels, l)
			}
			if len(e.labels) > 0 {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

func splitName(s string) string {
	if s == "train" || s == "val" || s == "test" {
		return s
	}
	return ""
}

// readYOLO reads images/<split>/ with labels/<split>/*.txt and data.yaml (detection),
// or <split>/<class>/<image> (classification).
func readYOLO(p *Project, files map[string]*zip.File) ([]importEntry, error) {
	var out []importEntry
	known := p.ClassIndex()
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ext := strings.ToLower(path.Ext(n))
		if ext != ".jpg" && ext != ".jpeg" && ext != ".png" {
			continue
		}
		parts := strings.Split(n, "/")
		var e importEntry
		if p.Task == "classify" {
			if len(parts) < 2 {
				continue
			}
			cls := parts[len(parts)-2]
			if _, ok := known[cls]; !ok {
				return nil, fmt.Errorf("%w: %s: class folder %q is not one of project %s's classes", ErrInvalid, n, cls, p.ID)
			}
			split := ""
			if len(parts) >= 3 {
				split = parts[len(parts)-3]
			}
			e = importEntry{name: n, split: splitName(split), labels: []Label{{Class: cls}}}
		} else {
			if len(parts) < 3 || parts[0] != "images" {
				continue
			}
			split := parts[1]
			lf := files["labels/"+split+"/"+strings.TrimSuffix(path.Base(n), path.Ext(n))+".txt"]
			if lf == nil {
				return nil, fmt.Errorf("%w: %s has no label file", ErrInvalid, n)
			}
			txt, err := readZip(lf)
			if err != nil {
				return nil, err
			}
			e = importEntry{name: n, split: splitName(split)}
			for ln, line := range strings.Split(strings.TrimSpace(string(txt)), "\n") {
				fs := strings.Fields(line)
				if len(fs) == 0 {
					continue
				}
				if len(fs) != 5 {
					return nil, fmt.Errorf("%w: %s line %d: want \"class cx cy w h\"", ErrInvalid, lf.Name, ln+1)
				}
				var v [5]float64
				for i, f := range fs {
					if v[i], err = strconv.ParseFloat(f, 64); err != nil {
						return nil, fmt.Errorf("%w: %s line %d: %v", ErrInvalid, lf.Name, ln+1, err)
					}
				}
				ci := int(v[0])
				if ci < 0 || ci >= len(p.Classes) {
					return nil, fmt.Errorf("%w: %s line %d: class %d outside the project's %d", ErrInvalid, lf.Name, ln+1, ci, len(p.Classes))
				}
				e.labels = append(e.labels, Label{Class: p.Classes[ci], Box: &Box{X0: float32(v[1] - v[3]/2), Y0: float32(v[2] - v[4]/2),
					X1: float32(v[1] + v[3]/2), Y1: float32(v[2] + v[4]/2)}})
			}
			if len(e.labels) == 0 {
				continue
			}
		}
		data, err := readZip(files[n])
		if err != nil {
			return nil, err
		}
		e.data, e.contentType = data, contentTypeOf(n)
		out = append(out, e)
	}
	return out, nil
}

func (a *API) importDataset(w http.ResponseWriter, r *http.Request) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 512<<20))
	if err != nil {
		return fmt.Errorf("%w: reading the archive: %v", ErrInvalid, err)
	}
	b, err := a.c.Import(r.Context(), r.PathValue("p"), r.URL.Query().Get("format"), data, UserOf(r.Context()).Name)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusCreated, Summarise(b))
}

// SeedImage is one image of a seed dataset built in memory.
type SeedImage struct {
	ID          string
	Data        []byte
	ContentType string
	Width       int
	Height      int
	Labels      []Label
	// Split is train, val or test ("": decided by the split rule on import).
	Split string
}

// SeedArchive writes seed images as a COCO zip that Import takes.
func SeedArchive(p *Project, seeds []SeedImage) ([]byte, error) {
	items := make([]exportItem, len(seeds))
	data := map[string][]byte{}
	for i, s := range seeds {
		items[i] = exportItem{DatasetEntry: DatasetEntry{ID: s.ID, Split: s.Split, Labels: s.Labels},
			rec: &ExampleRecord{ContentType: s.ContentType, Width: s.Width, Height: s.Height}}
		data[s.ID] = s.Data
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	err := exportCOCO(p, items, func(name string, it exportItem) error {
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
