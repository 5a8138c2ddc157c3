package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/edgeloop/edgeloop/pkg/opshttp"
	"github.com/edgeloop/edgeloop/pkg/raster"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// maxUpload bounds an image posted to /v1/infer.
const maxUpload = 10 << 20

// Handler serves the agent's HTTP API:
//
//	POST /v1/infer     an image (JPEG or PNG body, or multipart field "image"); optional
//	                   X-Frame-Id header → {frame_id, model_version, predictions, sampled}
//	POST /v1/feedback  {"frame_id": "...", "labels": [{"class_name": "7", "box": {...}}]}
//	GET  /v1/status    the DeviceStatus as JSON
//
// plus /healthz, /readyz and /metrics. Errors are JSON: {"error": "..."}.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	opshttp.Mount(mux, a.reg, opshttp.Check{Name: "model", Fn: func(context.Context) error {
		if a.current.Load() == nil {
			return ErrNoModel
		}
		return nil
	}})
	mux.HandleFunc("POST /v1/infer", a.handleInfer)
	mux.HandleFunc("POST /v1/feedback", a.handleFeedback)
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		b, _ := protojson.Marshal(a.Status())
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	return mux
}

func (a *Agent) serveHTTP(ctx context.Context) error {
	return opshttp.Serve(ctx, a.cfg.HTTPAddr, a.Handler(), a.log, nil, opshttp.WithTLS(a.cfg.HTTPTLS))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}

func (a *Agent) handleInfer(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxUpload)
	var data []byte
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
		f, _, ferr := r.FormFile("image")
		if ferr != nil {
			writeError(w, http.StatusBadRequest, "multipart body: field \"image\": %v", ferr)
			return
		}
		defer f.Close()
		data, err = io.ReadAll(f)
	} else {
		data, err = io.ReadAll(r.Body)
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, "image larger than %d bytes", maxUpload)
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the body: %v", err)
		return
	}
	im, err := a.decode(data)
	if errors.Is(err, raster.ErrTooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, "%v", err)
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "body is not a JPEG or PNG image: %v", err)
		return
	}
	res, err := a.Infer(r.Context(), r.Header.Get("X-Frame-Id"), im, nil)
	switch {
	case errors.Is(err, ErrNoModel):
		writeError(w, http.StatusServiceUnavailable, "%v", err)
	case err != nil:
		writeError(w, http.StatusBadRequest, "%v", err)
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

type feedbackRequest struct {
	FrameID string `json:"frame_id"`
	Labels  []struct {
		ClassName string `json:"class_name"`
		Box       *struct {
			XMin float32 `json:"x_min"`
			YMin float32 `json:"y_min"`
			XMax float32 `json:"x_max"`
			YMax float32 `json:"y_max"`
		} `json:"box,omitempty"`
	} `json:"labels"`
}

func (a *Agent) handleFeedback(w http.ResponseWriter, r *http.Request) {
	var req feedbackRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "feedback body: %v", err)
		return
	}
	c := &edgeloopv1.Annotation{}
	for _, l := range req.Labels {
		lb := &edgeloopv1.Label{ClassName: l.ClassName}
		if l.Box != nil {
			lb.Box = &edgeloopv1.Box{XMin: l.Box.XMin, YMin: l.Box.YMin, XMax: l.Box.XMax, YMax: l.Box.YMax}
		}
		c.Labels = append(c.Labels, lb)
	}
	id, err := a.Feedback(req.FrameID, c)
	switch {
	case errors.Is(err, ErrUnknownFrame):
		writeError(w, http.StatusNotFound, "%v", err)
	case errors.Is(err, ErrNoModel):
		writeError(w, http.StatusServiceUnavailable, "%v", err)
	case err != nil:
		writeError(w, http.StatusBadRequest, "%v", err)
	default:
		writeJSON(w, http.StatusAccepted, map[string]any{"frame_id": req.FrameID, "example_id": id, "sampled": true})
	}
}
