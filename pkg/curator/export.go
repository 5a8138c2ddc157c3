package curator

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/dataformat"
	"github.com/edgeloop/edgeloop/pkg/httpapi"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
)

// exportSet is what an export writes, checked before the first byte goes out.
type exportSet struct {
	p      *project.Project
	format string
	items  []dataformat.Item
}

// prepareExport checks the arguments and gathers the entries of the dataset (or one
// split).
func (c *Curator) prepareExport(ctx context.Context, pid, format, split string) (*exportSet, error) {
	p, err := c.st.Project(ctx, pid)
	if err != nil {
		return nil, err
	}
	if split != "" && split != "train" && split != "val" && split != "test" {
		return nil, fmt.Errorf("%w: split %q: want train, val or test", project.ErrInvalid, split)
	}
	switch format {
	case dataformat.FormatCOCO, dataformat.FormatYOLO, dataformat.FormatVOC, dataformat.FormatLabelStudio:
	default:
		return nil, fmt.Errorf("%w: format %q: want coco, yolo, voc or labelstudio", project.ErrInvalid, format)
	}
	d, err := c.st.Dataset(ctx, pid)
	if err != nil {
		return nil, err
	}
	set := &exportSet{p: p, format: format}
	known := p.ClassIndex()
	for _, e := range d.Entries {
		if split != "" && e.Split != split {
			continue
		}
		// Labels of a class removed from the project are left out, and so is an
		// example with nothing left to say (its labels were all of removed classes).
		labels := e.Labels[:0:0]
		for _, l := range e.Labels {
			if _, ok := known[l.Class]; ok {
				labels = append(labels, l)
			}
		}
		if len(labels) == 0 && len(e.Labels) > 0 {
			continue
		}
		e.Labels = labels
		rec, err := c.st.Example(ctx, pid, e.ID)
		if errors.Is(err, objstore.ErrCorrupt) {
			c.st.Corrupt.Report(project.ExampleKey(pid, e.ID), err) // the export goes on without it
			continue
		}
		if err != nil {
			return nil, err
		}
		set.items = append(set.items, dataformat.Item{DatasetEntry: e, Record: rec})
	}
	return set, nil
}

// Export streams the dataset (or one split) as a zip in the given format.
func (c *Curator) Export(ctx context.Context, pid, format, split string, w io.Writer) error {
	set, err := c.prepareExport(ctx, pid, format, split)
	if err != nil {
		return err
	}
	return c.write(ctx, set, w)
}

func (c *Curator) write(ctx context.Context, set *exportSet, w io.Writer) error {
	p, items := set.p, set.items
	var err error
	zw := zip.NewWriter(w)
	image := func(name string, it dataformat.Item) error {
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
	if err = dataformat.Write(set.format, p, items, image, file); err != nil {
		return err
	}
	return zw.Close()
}

func (a *api) export(w http.ResponseWriter, r *http.Request) error {
	p, format, split := r.PathValue("p"), r.URL.Query().Get("format"), r.URL.Query().Get("split")
	if format == "" {
		format = dataformat.FormatCOCO
	}
	set, err := a.c.prepareExport(r.Context(), p, format, split)
	if err != nil {
		return err
	}
	name := p + "-" + format
	if split != "" {
		name += "-" + split
	}
	// A whole dataset may take longer to send than the server's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(importTimeout))
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.zip"`)
	if err := a.c.write(r.Context(), set, w); err != nil {
		// The status is sent: all that is left is to cut the stream (a broken zip).
		a.c.log.Warn("export interrupted", zap.String("project", p), zap.Error(err))
	}
	return nil
}

// Import adds a COCO or YOLO dataset (a zip as Export writes it, of size bytes) as a
// seed: images and records are stored, the annotations enter the dataset in the splits
// the archive names, and BatchApproved announces them (batch id "import-…"). It reads
// one image at a time from the archive. It returns the batch.
func (c *Curator) Import(ctx context.Context, pid, format string, archive io.ReaderAt, size int64, user string) (*project.Batch, error) {
	p, err := c.st.Project(ctx, pid)
	if err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(archive, size)
	if err != nil {
		return nil, fmt.Errorf("%w: not a zip archive: %v", project.ErrInvalid, err)
	}
	entries, err := dataformat.Read(format, p, zr)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: the archive holds no annotated image", project.ErrInvalid)
	}
	now := c.now()
	b := &project.Batch{ID: "import-" + now.UTC().Format("20060102T150405") + "-" + uuid.NewString()[:8], Project: p.ID, State: project.StateApproving, CreatedAt: now,
		Audit: []project.AuditEntry{{At: now, User: user, Action: "import", To: project.StateApproving, Detail: fmt.Sprintf("%s, %d images", format, len(entries))}}}
	// Every image is checked (its size from its header first, raster.DefaultMaxPixels)
	// before anything is stored: a refused archive leaves nothing behind.
	dims := make([][3]int, len(entries))
	for i, e := range entries {
		data, err := e.Read()
		if err != nil {
			return nil, err
		}
		im, err := raster.DecodeChannels(data, raster.DefaultMaxPixels, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: image %s: %v", project.ErrInvalid, e.Name, err)
		}
		dims[i] = [3]int{im.W, im.H, im.Channels()}
	}
	for i, e := range entries {
		data, err := e.Read()
		if err != nil {
			return nil, err
		}
		key, _, err := objstore.PutContent(ctx, c.st.S, project.ImagePrefix(p.ID), data, e.ContentType)
		if err != nil {
			return nil, err
		}
		id := strings.TrimSuffix(path.Base(e.Name), path.Ext(e.Name))
		if !exampleIDOK(id) {
			id = uuid.NewString()
		}
		rec := &project.ExampleRecord{ID: id, Project: p.ID, Device: "import", CapturedAt: now, ReceivedAt: now, Image: key, ContentType: e.ContentType,
			Width: dims[i][0], Height: dims[i][1], Channels: dims[i][2], Reasons: []project.Reason{{Kind: "import", Detail: "seed dataset (" + format + ")"}}, TakenBy: "import"}
		if _, err := objstore.PutJSON(ctx, c.st.S, project.ExampleKey(p.ID, id), rec, objstore.PutOptions{IfNoneMatch: true}); err != nil && !errors.Is(err, objstore.ErrPrecondition) {
			return nil, err
		}
		t := now
		cls := ""
		if len(e.Labels) > 0 {
			cls = e.Labels[0].Class
		}
		// The archive's splits win over the split rule for a seed dataset.
		b.Items = append(b.Items, project.Item{ExampleID: id, Class: cls, Reason: "import", Labels: e.Labels, Status: "done", AnnotatedBy: user, AnnotatedAt: &t,
			ArrivedAt: now, Split: e.Split})
	}
	// Stored as approving first, like a reviewer's approval: if the curator stops
	// here, resumeApprovals completes it, with the same splits.
	if _, err := objstore.PutJSON(ctx, c.st.S, project.BatchKey(p.ID, b.ID), b, objstore.PutOptions{IfNoneMatch: true}); err != nil {
		return nil, err
	}
	return c.completeApproval(ctx, p.ID, b, user)
}

func exampleIDOK(id string) bool { return contract.ValidExampleID(id) }

// importTimeout is how long an import may take to upload and store its archive, and an
// export to send one (the server's read and write timeouts are shorter).
const importTimeout = 30 * time.Minute

// importDataset spools the uploaded archive to a temporary file (at most maxImport
// bytes; zip needs random access) and imports it from there, so that an upload costs
// disk, not memory.
func (a *api) importDataset(w http.ResponseWriter, r *http.Request) error {
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(importTimeout)
	_ = rc.SetReadDeadline(deadline) // unsupported only by test recorders: the server's timeout stays
	_ = rc.SetWriteDeadline(deadline)
	f, err := os.CreateTemp("", "edgeloop-import-*.zip")
	if err != nil {
		return fmt.Errorf("import into %s: spool the archive: %w", r.PathValue("p"), err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	n, err := io.Copy(f, http.MaxBytesReader(w, r.Body, a.c.maxImport))
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		httpapi.WriteError(w, http.StatusRequestEntityTooLarge, "import into %s: the archive is larger than the limit of %d MiB", r.PathValue("p"), mbe.Limit>>20)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: reading the archive: %v", project.ErrInvalid, err)
	}
	b, err := a.c.Import(r.Context(), r.PathValue("p"), r.URL.Query().Get("format"), f, n, httpapi.UserOf(r.Context()).Name)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, Summarise(b))
}
