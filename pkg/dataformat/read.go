package dataformat

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/edgeloop/edgeloop/pkg/project"
)

// Import formats beside the export formats (FormatCOCO, FormatYOLO, FormatVOC).
const (
	// FormatFolders is one folder per class, optionally under train/val/test folders:
	// [<split>/]<class>/<image> (classification; Ultralytics' and Keras's layout).
	FormatFolders = "folders"
	// FormatAuto picks the format from the files (Detect).
	FormatAuto = ""
)

// ReadOptions say what a dataset is read for.
type ReadOptions struct {
	// Task is classify or detect; "" takes the dataset's own (COCO's info.task, a YOLO
	// layout, VOC objects that cover whole images for classification).
	Task string
	// Classes, when set, are the classes labels must be among; nil discovers them from
	// the files (COCO categories in id order, YOLO's data.yaml names, sorted folder or
	// VOC object names).
	Classes []string
}

// Dataset is an annotated dataset read from files.
type Dataset struct {
	Format  string
	Task    string
	Classes []string
	Entries []Entry
	// Problems are the images left out, each with its path and why (a missing image
	// or label file, a malformed annotation, a class that is not allowed). A service
	// import refuses the archive on the first; a training skips them.
	Problems []Problem
}

// Problem is an image a dataset could not use.
type Problem struct {
	Path   string
	Reason string
}

func (p Problem) String() string { return p.Path + ": " + p.Reason }

// Entry is one annotated image. Its bytes stay in the files until Read, so that an
// import holds one image in memory at a time.
type Entry struct {
	// Name is the image's path in the dataset.
	Name string
	// Split is train, val or test when the dataset puts it in one ("" otherwise).
	Split       string
	ContentType string
	Labels      []project.Label
	fsys        fs.FS
}

// Read returns the image's bytes (at most 64 MiB).
func (e Entry) Read() ([]byte, error) { return readFile(e.fsys, e.Name) }

// maxEntry bounds one file of a dataset.
const maxEntry = 64 << 20

func readFile(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", project.ErrInvalid, name, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxEntry {
		return nil, fmt.Errorf("%w: %s is larger than 64 MiB", project.ErrInvalid, name)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxEntry+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", project.ErrInvalid, name, err)
	}
	if len(b) > maxEntry {
		return nil, fmt.Errorf("%w: %s is larger than 64 MiB", project.ErrInvalid, name)
	}
	return b, nil
}

func contentTypeOf(name string) string {
	if strings.EqualFold(path.Ext(name), ".png") {
		return "image/png"
	}
	return "image/jpeg"
}

func isImage(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return true
	}
	return false
}

// splitName maps a folder name to a split (Roboflow writes "valid").
func splitName(s string) string {
	switch strings.ToLower(s) {
	case "train":
		return "train"
	case "val", "valid", "validation":
		return "val"
	case "test":
		return "test"
	}
	return ""
}

// files lists the regular files of fsys by path, leaving out hidden files and macOS's
// __MACOSX folders that zip tools add.
func files(fsys fs.FS) ([]string, error) {
	var out []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		base := path.Base(p)
		if p != "." && (strings.HasPrefix(base, ".") || base == "__MACOSX") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: listing the dataset: %v", project.ErrInvalid, err)
	}
	sort.Strings(out)
	return out, nil
}

// Root descends into the single folder a dataset's files sit in (a zip of "mydata/"),
// while that folder holds folders only and is not itself part of a layout.
func Root(fsys fs.FS) (fs.FS, error) {
	for {
		ents, err := fs.ReadDir(fsys, ".")
		if err != nil {
			return nil, fmt.Errorf("%w: reading the dataset: %v", project.ErrInvalid, err)
		}
		var dirs []fs.DirEntry
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") || e.Name() == "__MACOSX" {
				continue
			}
			if !e.IsDir() {
				return fsys, nil
			}
			dirs = append(dirs, e)
		}
		if len(dirs) != 1 || layoutFolder(dirs[0].Name()) {
			return fsys, nil
		}
		inner, err := fs.ReadDir(fsys, dirs[0].Name())
		if err != nil {
			return nil, fmt.Errorf("%w: reading the dataset: %v", project.ErrInvalid, err)
		}
		for _, e := range inner {
			if !e.IsDir() && isImage(e.Name()) {
				return fsys, nil // one class folder
			}
		}
		if fsys, err = fs.Sub(fsys, dirs[0].Name()); err != nil {
			return nil, err
		}
	}
}

func layoutFolder(name string) bool {
	switch name {
	case "images", "labels", "Annotations", "JPEGImages", "ImageSets":
		return true
	}
	return splitName(name) != ""
}

// DetectFormat names the format of the files: COCO when an annotations.json (or
// _annotations.coco.json) is there, VOC with an Annotations folder, YOLO with a
// data.yaml or labels folder, class folders otherwise.
func DetectFormat(names []string) string {
	format := FormatFolders
	for _, n := range names {
		base := path.Base(n)
		switch {
		case base == "annotations.json" || base == "_annotations.coco.json":
			return FormatCOCO
		case strings.HasPrefix(n, "Annotations/") && strings.HasSuffix(n, ".xml"):
			return FormatVOC
		case base == "data.yaml" || hasPart(n, "labels") && strings.HasSuffix(n, ".txt"):
			format = FormatYOLO
		}
	}
	return format
}

func hasPart(n, part string) bool { return slices.Contains(strings.Split(n, "/"), part) }

// Open reads the annotated images of a dataset in format (FormatAuto: DetectFormat's
// choice). Broken annotations of one image are Problems, not errors; an error means
// the dataset as a whole cannot be read.
func Open(fsys fs.FS, format string, o ReadOptions) (*Dataset, error) {
	if o.Task != "" && o.Task != "classify" && o.Task != "detect" {
		return nil, fmt.Errorf("%w: task %q: want classify or detect", project.ErrInvalid, o.Task)
	}
	names, err := files(fsys)
	if err != nil {
		return nil, err
	}
	if format == FormatAuto {
		format = DetectFormat(names)
	}
	d := &Dataset{Format: format, Task: o.Task}
	r := &reader{fsys: fsys, names: names, d: d, o: o, index: map[string]int{}}
	for i, c := range o.Classes {
		r.index[c] = i
	}
	d.Classes = slices.Clone(o.Classes)
	switch format {
	case FormatCOCO:
		err = r.coco()
	case FormatYOLO:
		err = r.yolo()
	case FormatVOC:
		err = r.voc()
	case FormatFolders:
		err = r.folders(FormatFolders)
	default:
		return nil, fmt.Errorf("%w: import format %q: want coco, yolo, voc or folders", project.ErrInvalid, format)
	}
	if err != nil {
		return nil, err
	}
	if d.Task == "" {
		d.Task = "detect"
	}
	if o.Classes == nil && (format == FormatFolders || format == FormatVOC || format == FormatYOLO && d.Task == "classify") {
		sort.Strings(d.Classes) // discovered from names: alphabetical, as Ultralytics and Keras order folders
	}
	return d, nil
}

// Read reads the annotated images of an archive (or directory) for project p, the way
// a service import wants them: the first problem refuses the whole dataset.
func Read(format string, p *project.Project, fsys fs.FS) ([]Entry, error) {
	if format != FormatCOCO && format != FormatYOLO {
		return nil, fmt.Errorf("%w: import format %q: want coco or yolo", project.ErrInvalid, format)
	}
	d, err := Open(fsys, format, ReadOptions{Task: p.Task, Classes: p.Classes})
	if err != nil {
		return nil, err
	}
	if len(d.Problems) > 0 {
		return nil, fmt.Errorf("%w: %s", project.ErrInvalid, d.Problems[0])
	}
	return d.Entries, nil
}

type reader struct {
	fsys  fs.FS
	names []string
	d     *Dataset
	o     ReadOptions
	// index maps class names to their position in d.Classes.
	index map[string]int
}

func (r *reader) problem(p, format string, args ...any) {
	r.d.Problems = append(r.d.Problems, Problem{Path: p, Reason: fmt.Sprintf(format, args...)})
}

// class admits a class name: known, or discovered when no classes were given.
func (r *reader) class(name string) bool {
	if _, ok := r.index[name]; ok {
		return true
	}
	if r.o.Classes != nil || name == "" {
		return false
	}
	r.index[name] = len(r.d.Classes)
	r.d.Classes = append(r.d.Classes, name)
	return true
}

// setTask settles the dataset's task from its layout, refusing a task the caller set
// that the files cannot give.
func (r *reader) setTask(layout string, fixed bool) error {
	switch {
	case r.d.Task == "":
		r.d.Task = layout
	case fixed && r.d.Task != layout:
		return fmt.Errorf("%w: the files are a %s layout, the task is %s", project.ErrInvalid, layout, r.d.Task)
	}
	return nil
}

func (r *reader) add(e Entry) {
	e.fsys, e.ContentType = r.fsys, contentTypeOf(e.Name)
	r.d.Entries = append(r.d.Entries, e)
}

func (r *reader) coco() error {
	var anns []string
	for _, n := range r.names {
		if b := path.Base(n); b == "annotations.json" || b == "_annotations.coco.json" {
			anns = append(anns, n)
		}
	}
	if len(anns) == 0 {
		return fmt.Errorf("%w: no annotations.json in the dataset", project.ErrInvalid)
	}
	present := map[string]bool{}
	for _, n := range r.names {
		present[n] = true
	}
	for _, n := range anns {
		dir := path.Dir(n)
		b, err := readFile(r.fsys, n)
		if err != nil {
			return err
		}
		var cf cocoFile
		if err := json.Unmarshal(b, &cf); err != nil {
			return fmt.Errorf("%w: %s: %v", project.ErrInvalid, n, err)
		}
		if t, _ := cf.Info["task"].(string); t == "classify" || t == "detect" {
			if err := r.setTask(t, false); err != nil {
				return err
			}
		}
		cats := map[int]string{}
		sort.Slice(cf.Categories, func(i, j int) bool { return cf.Categories[i].ID < cf.Categories[j].ID })
		for _, c := range cf.Categories {
			if !r.class(c.Name) {
				return fmt.Errorf("%w: %s: category %q is not one of the classes %v", project.ErrInvalid, n, c.Name, r.o.Classes)
			}
			cats[c.ID] = c.Name
		}
		byImage := map[int][]cocoAnnotation{}
		for _, a := range cf.Annotations {
			byImage[a.ImageID] = append(byImage[a.ImageID], a)
		}
		for _, im := range cf.Images {
			file := path.Clean(path.Join(dir, im.FileName))
			if !present[file] && present[path.Join(dir, "images", im.FileName)] {
				file = path.Join(dir, "images", im.FileName)
			}
			if !present[file] {
				r.problem(file, "image %s named in %s is missing", im.FileName, n)
				continue
			}
			e := Entry{Name: file, Split: splitName(path.Base(dir))}
			ok := true
			for _, a := range byImage[im.ID] {
				cls, known := cats[a.CategoryID]
				if !known || len(a.BBox) != 4 || im.Width <= 0 || im.Height <= 0 {
					r.problem(file, "annotation %d in %s is malformed", a.ID, n)
					ok = false
					break
				}
				l := project.Label{Class: cls}
				if r.d.Task != "classify" {
					l.Box = &project.Box{X0: float32(a.BBox[0] / float64(im.Width)), Y0: float32(a.BBox[1] / float64(im.Height)),
						X1: float32((a.BBox[0] + a.BBox[2]) / float64(im.Width)), Y1: float32((a.BBox[1] + a.BBox[3]) / float64(im.Height))}
				}
				e.Labels = append(e.Labels, l)
			}
			// A detection image without boxes is a negative example (nothing to find
			// there), as in COCO's own sets; a classification image needs its class.
			if ok && (len(e.Labels) > 0 || r.d.Task != "classify") {
				r.add(e)
			}
		}
	}
	if r.d.Task == "classify" {
		for i := range r.d.Entries {
			r.d.Entries[i].Labels = r.d.Entries[i].Labels[:1]
		}
	}
	return nil
}

// yolo reads Ultralytics' detection layout — images/<split>/x.jpg with
// labels/<split>/x.txt, or Roboflow's <split>/images/x.jpg with <split>/labels/x.txt —
// and class names from data.yaml; or, with no labels folder, the classification
// layout [<split>/]<class>/<image>.
func (r *reader) yolo() error {
	detect := false
	var yaml string
	for _, n := range r.names {
		if hasPart(n, "labels") && strings.HasSuffix(n, ".txt") {
			detect = true
		}
		if path.Base(n) == "data.yaml" && (yaml == "" || len(n) < len(yaml)) {
			yaml = n
		}
	}
	if !detect {
		return r.folders(FormatYOLO)
	}
	if err := r.setTask("detect", true); err != nil {
		return err
	}
	var names []string
	if yaml != "" {
		b, err := readFile(r.fsys, yaml)
		if err != nil {
			return err
		}
		if names, err = yamlNames(string(b)); err != nil {
			return fmt.Errorf("%w: %s: %v", project.ErrInvalid, yaml, err)
		}
		for _, c := range names {
			if !r.class(c) {
				return fmt.Errorf("%w: %s: class %q is not one of the classes %v", project.ErrInvalid, yaml, c, r.o.Classes)
			}
		}
	}
	present := map[string]bool{}
	for _, n := range r.names {
		present[n] = true
	}
	for _, n := range r.names {
		parts := strings.Split(n, "/")
		at := slices.Index(parts, "images")
		if !isImage(n) || at < 0 {
			continue
		}
		lp := slices.Clone(parts)
		lp[at] = "labels"
		lp[len(lp)-1] = strings.TrimSuffix(lp[len(lp)-1], path.Ext(n)) + ".txt"
		lf := strings.Join(lp, "/")
		split := ""
		if at+2 < len(parts) {
			split = splitName(parts[at+1])
		}
		if split == "" && at > 0 {
			split = splitName(parts[at-1])
		}
		if !present[lf] {
			r.problem(n, "no label file %s", lf)
			continue
		}
		txt, err := readFile(r.fsys, lf)
		if err != nil {
			return err
		}
		e := Entry{Name: n, Split: split}
		if msg := r.yoloLabels(&e, string(txt), names); msg != "" {
			r.problem(n, "%s: %s", lf, msg)
			continue
		}
		r.add(e) // an empty label file: an image without objects, a negative example
	}
	return nil
}

// yoloLabels parses "class cx cy w h" lines; it returns what is wrong, or "".
func (r *reader) yoloLabels(e *Entry, txt string, names []string) string {
	for ln, line := range strings.Split(strings.TrimSpace(txt), "\n") {
		fs := strings.Fields(line)
		if len(fs) == 0 {
			continue
		}
		if len(fs) != 5 {
			return fmt.Sprintf("line %d: want \"class cx cy w h\"", ln+1)
		}
		var v [5]float64
		for i, f := range fs {
			var err error
			if v[i], err = strconv.ParseFloat(f, 64); err != nil {
				return fmt.Sprintf("line %d: %v", ln+1, err)
			}
		}
		ci := int(v[0])
		var cls string
		switch {
		case names != nil && ci >= 0 && ci < len(names):
			cls = names[ci]
		case names == nil && r.o.Classes != nil && ci >= 0 && ci < len(r.o.Classes):
			cls = r.o.Classes[ci]
		case names == nil && r.o.Classes == nil && ci >= 0 && ci < 1000:
			for i := len(r.d.Classes); i <= ci; i++ {
				r.class(strconv.Itoa(i))
			}
			cls = strconv.Itoa(ci)
		default:
			return fmt.Sprintf("line %d: class %d outside the %d classes", ln+1, ci, max(len(names), len(r.d.Classes)))
		}
		e.Labels = append(e.Labels, project.Label{Class: cls, Box: &project.Box{X0: float32(v[1] - v[3]/2), Y0: float32(v[2] - v[4]/2),
			X1: float32(v[1] + v[3]/2), Y1: float32(v[2] + v[4]/2)}})
	}
	return ""
}

// yamlNames reads the class names of an Ultralytics data.yaml: a "names:" map of
// index: name lines, a list of "- name" lines, or an inline [a, b] list.
func yamlNames(doc string) ([]string, error) {
	lines := strings.Split(doc, "\n")
	unquote := func(s string) string {
		s = strings.TrimSpace(s)
		if u, err := strconv.Unquote(s); err == nil {
			return u
		}
		return strings.Trim(s, `'"`)
	}
	for i, line := range lines {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "names" || strings.HasPrefix(line, " ") {
			continue
		}
		if v = strings.TrimSpace(v); strings.HasPrefix(v, "[") {
			var out []string
			for _, f := range strings.Split(strings.Trim(v, "[]"), ",") {
				out = append(out, unquote(f))
			}
			return out, nil
		}
		byIndex := map[int]string{}
		var list []string
		for _, l := range lines[i+1:] {
			if strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
				continue
			}
			if !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "-") {
				break
			}
			t := strings.TrimSpace(l)
			if strings.HasPrefix(t, "- ") {
				list = append(list, unquote(t[2:]))
				continue
			}
			ks, vs, ok := strings.Cut(t, ":")
			idx, err := strconv.Atoi(strings.TrimSpace(ks))
			if !ok || err != nil {
				return nil, fmt.Errorf("names: line %q: want \"index: name\"", t)
			}
			byIndex[idx] = unquote(vs)
		}
		if len(list) > 0 {
			return list, nil
		}
		out := make([]string, len(byIndex))
		for idx, n := range byIndex {
			if idx < 0 || idx >= len(out) {
				return nil, fmt.Errorf("names: index %d of %d names", idx, len(out))
			}
			out[idx] = n
		}
		return out, nil
	}
	return nil, nil
}

// folders reads [<split>/]<class>/<image> (classification).
func (r *reader) folders(format string) error {
	if err := r.setTask("classify", true); err != nil {
		return err
	}
	for _, n := range r.names {
		if !isImage(n) {
			continue
		}
		parts := strings.Split(n, "/")
		if len(parts) < 2 {
			r.problem(n, "an image outside a class folder")
			continue
		}
		cls := parts[len(parts)-2]
		split := ""
		if len(parts) >= 3 {
			split = splitName(parts[len(parts)-3])
		}
		if !r.class(cls) {
			r.problem(n, "class folder %q is not one of the classes %v", cls, r.o.Classes)
			continue
		}
		r.add(Entry{Name: n, Split: split, Labels: []project.Label{{Class: cls}}})
	}
	if len(r.d.Entries) == 0 && len(r.d.Problems) == 0 {
		return fmt.Errorf("%w: no image in a class folder (want %s's [<split>/]<class>/<image>)", project.ErrInvalid, format)
	}
	return nil
}

// voc reads Pascal VOC: Annotations/*.xml, JPEGImages/ and ImageSets/Main/<split>.txt.
// Objects that cover their whole image read as classification labels when the task
// is not fixed (edgeloop's export of a classification project).
func (r *reader) voc() error {
	split := map[string]string{}
	present := map[string]bool{}
	for _, n := range r.names {
		present[n] = true
		dir, base := path.Split(n)
		if dir == "ImageSets/Main/" && strings.HasSuffix(base, ".txt") {
			s := splitName(strings.TrimSuffix(base, ".txt"))
			if s == "" {
				continue
			}
			b, err := readFile(r.fsys, n)
			if err != nil {
				return err
			}
			for _, id := range strings.Fields(string(b)) {
				split[id] = s
			}
		}
	}
	type parsed struct {
		e     Entry
		whole bool
	}
	var all []parsed
	for _, n := range r.names {
		if !strings.HasPrefix(n, "Annotations/") || !strings.HasSuffix(n, ".xml") {
			continue
		}
		b, err := readFile(r.fsys, n)
		if err != nil {
			return err
		}
		var a vocAnnotation
		if err := xml.Unmarshal(b, &a); err != nil {
			r.problem(n, "%v", err)
			continue
		}
		id := strings.TrimSuffix(path.Base(n), ".xml")
		img := path.Join("JPEGImages", a.Filename)
		if a.Filename == "" || !present[img] {
			r.problem(n, "image %q is missing from JPEGImages", a.Filename)
			continue
		}
		w, h := float32(a.Size.Width), float32(a.Size.Height)
		if w <= 0 || h <= 0 {
			r.problem(img, "%s gives no image size", n)
			continue
		}
		p := parsed{e: Entry{Name: img, Split: split[id]}, whole: true}
		var bad error
		for _, o := range a.Objects {
			if !r.class(o.Name) {
				bad = fmt.Errorf("object class %q is not one of the classes %v", o.Name, r.o.Classes)
				break
			}
			bb := o.BndBox
			box := &project.Box{X0: float32(bb.XMin-1) / w, Y0: float32(bb.YMin-1) / h, X1: float32(bb.XMax) / w, Y1: float32(bb.YMax) / h}
			p.whole = p.whole && box.X0 <= 0.01 && box.Y0 <= 0.01 && box.X1 >= 0.99 && box.Y1 >= 0.99
			p.e.Labels = append(p.e.Labels, project.Label{Class: o.Name, Box: box})
		}
		if bad != nil {
			r.problem(img, "%s: %v", n, bad)
			continue
		}
		if len(p.e.Labels) > 0 {
			all = append(all, p)
		}
	}
	whole := len(all) > 0
	for _, p := range all {
		whole = whole && p.whole && len(p.e.Labels) == 1
	}
	if r.d.Task == "" {
		r.d.Task = map[bool]string{true: "classify", false: "detect"}[whole]
	}
	for _, p := range all {
		if r.d.Task == "classify" {
			p.e.Labels = []project.Label{{Class: p.e.Labels[0].Class}}
		}
		r.add(p.e)
	}
	return nil
}
