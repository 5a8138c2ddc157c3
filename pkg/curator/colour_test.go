package curator

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/dataformat"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
	"github.com/edgeloop/edgeloop/pkg/opshttp"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
)

// TestDomainColourImportExportKeepsTheOriginal: a colour JPEG of 200×150 imported into a
// project is stored byte for byte, recorded at its size with 3 channels, and exported
// as it came, Pascal VOC saying 200×150×3.
func TestDomainColourImportExportKeepsTheOriginal(t *testing.T) {
	ctx := context.Background()
	c := New(memstore.New(), &events{}, kafkabus.Config{}, NewMetrics(opshttp.NewRegistry()), zap.NewNop())
	p := &project.Project{ID: "shelf", Task: "classify", Classes: []string{"red", "blue"}}
	p.Defaults()
	if err := c.st.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	im := raster.NewC(200, 150, 3)
	for i := range 200 * 150 {
		im.Pix[i], im.Pix[200*150+i], im.Pix[2*200*150+i] = 0.9, float32(i%200)/200, 0.1
	}
	jpg := im.EncodeJPEG(90)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("train/red/can.jpg")
	_, _ = w.Write(jpg)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Import(ctx, p.ID, dataformat.FormatYOLO, bytes.NewReader(buf.Bytes()), int64(buf.Len()), "ada"); err != nil {
		t.Fatal(err)
	}
	rec, err := c.st.Example(ctx, p.ID, "can")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Width != 200 || rec.Height != 150 || rec.Channels != 3 {
		t.Fatalf("recorded %dx%dx%d, want 200x150x3", rec.Width, rec.Height, rec.Channels)
	}
	var out bytes.Buffer
	if err := c.Export(ctx, p.ID, dataformat.FormatVOC, "", &out); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(out.Bytes()), int64(out.Len()))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		r, _ := f.Open()
		files[f.Name], _ = io.ReadAll(r)
		r.Close()
	}
	if !bytes.Equal(files["JPEGImages/can.jpg"], jpg) {
		t.Fatalf("the exported image differs from the imported one (files %d)", len(files))
	}
	xml := string(files["Annotations/can.xml"])
	for _, want := range []string{"<width>200</width>", "<height>150</height>", "<depth>3</depth>"} {
		if !strings.Contains(xml, want) {
			t.Fatalf("VOC annotation lacks %s:\n%s", want, xml)
		}
	}
}
