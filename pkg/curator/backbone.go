package curator

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/httpapi"
	"github.com/edgeloop/edgeloop/pkg/nn/weights"
	"github.com/edgeloop/edgeloop/pkg/project"
)

// backboneUpload answers POST /api/v1/backbones.
type backboneUpload struct {
	// Backbone is the model setting's value that names the upload.
	Backbone string `json:"backbone"`
	SHA256   string `json:"sha256"`
	Bytes    int    `json:"bytes"`
	Tensors  int    `json:"tensors"`
	// Size is the MobileNetV2 size the file's widths make: the project's model setting
	// must name it.
	Size string `json:"size"`
}

// uploadBackbone keeps a pretrained weights file (the body; ?name=FILE.safetensors or
// .onnx) in the store for projects' model settings to name: a torchvision MobileNetV2 of
// one of the family's widths, or a 400 saying why not.
func (a *api) uploadBackbone(w http.ResponseWriter, r *http.Request) error {
	name := r.URL.Query().Get("name")
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, project.MaxBackboneBytes))
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		httpapi.WriteError(w, http.StatusRequestEntityTooLarge, "backbone %s: larger than the limit of %d MiB", name, mbe.Limit>>20)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: backbone %s: reading it: %v", project.ErrInvalid, name, err)
	}
	ts, err := weights.Decode(name, b)
	if err != nil {
		return fmt.Errorf("%w: backbone: %v", project.ErrInvalid, err)
	}
	size, err := weights.FamilySize(ts)
	if err != nil {
		return fmt.Errorf("%w: backbone %s: %v", project.ErrInvalid, name, err)
	}
	ref, sum, err := a.c.st.PutBackbone(r.Context(), name, b)
	if err != nil {
		return err
	}
	a.c.log.Info("backbone uploaded", zap.String("backbone", ref), zap.String("size", size), zap.Int("bytes", len(b)),
		zap.String("by", httpapi.UserOf(r.Context()).Name))
	return httpapi.WriteJSON(w, http.StatusCreated, backboneUpload{Backbone: ref, SHA256: sum, Bytes: len(b), Tensors: len(ts), Size: size})
}
