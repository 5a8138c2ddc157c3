package retrain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/dataformat"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/project"
)

// BootstrapOptions make a project's first model possible before any edge example: the
// project is created if missing and a seed dataset from a built-in dataset is imported
// (all of it in train, so that val and test fill with production examples), which the
// retrain service turns into version 1.
type BootstrapOptions struct {
	API      string
	Token    string
	Project  string
	Dataset  string
	Limit    int
	Seed     uint64
	MNISTDir string
	// BatchMin, BatchMax and MaxWait size the project's correction batches.
	BatchMin, BatchMax int
	MaxWait            time.Duration
	// Epochs of the project's fine-tunes (0: the project's default).
	Epochs int
	// Model is the project's model setting (nil: the dataset's, datasets.Spec.Model).
	Model *nn.Spec
	// Backbone is the pretrained weights the project's first model starts from: a file
	// here, which Bootstrap uploads into edgeloop's store (POST /api/v1/backbones), or a
	// model setting's "s3:backbones/…" value as it is.
	Backbone string
}

// RegisterBootstrapFlags adds `retrain bootstrap`'s flags.
func RegisterBootstrapFlags(fs *flag.FlagSet) *BootstrapOptions {
	o := &BootstrapOptions{}
	fs.StringVar(&o.API, "api", "http://127.0.0.1:8080", "curator API")
	fs.StringVar(&o.Token, "token", "admin-dev-token", "admin bearer token")
	fs.StringVar(&o.Project, "project", "digits", "project id")
	fs.StringVar(&o.Dataset, "dataset", "mnist", "seed dataset: mnist, digit-scenes, colour-objects or colour-scenes (optionally :drift=NAME, and size=WxH,classes=N for colour, objects=MIN-MAX for colour-scenes)")
	fs.IntVar(&o.Limit, "limit", 2000, "seed examples")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of generated scenes")
	fs.StringVar(&o.MNISTDir, "mnist-dir", "", "MNIST data directory")
	fs.IntVar(&o.BatchMin, "batch-min", 30, "smallest correction batch")
	fs.IntVar(&o.BatchMax, "batch-max", 50, "largest correction batch")
	fs.DurationVar(&o.MaxWait, "max-wait", 2*time.Minute, "a batch of at least batch-min closes once its oldest example waited this long")
	fs.StringVar(&o.Backbone, "backbone", "", "pretrained MobileNetV2 weights (.safetensors or .onnx, torchvision names) the project's first model starts from (a MobileNetV2 dataset: colour-objects): a file here, uploaded into edgeloop's store, or s3:backbones/… already there")
	return o
}

// uploadBackbone returns the model setting's backbone for o.Backbone: an "s3:" value as
// it is, a file uploaded into edgeloop's store through the curator API, so that no
// retrain machine needs a copy.
func uploadBackbone(ctx context.Context, o *BootstrapOptions) (string, error) {
	if strings.HasPrefix(o.Backbone, nn.StoreBackbone) {
		return o.Backbone, nil
	}
	b, err := os.ReadFile(o.Backbone)
	if err != nil {
		return "", fmt.Errorf("backbone: %w", err)
	}
	code, body, err := call(ctx, o, "POST", "/api/v1/backbones?name="+url.QueryEscape(filepath.Base(o.Backbone)), "application/octet-stream", b)
	if err != nil {
		return "", err
	}
	var up struct{ Backbone string }
	if code != http.StatusCreated || json.Unmarshal(body, &up) != nil || up.Backbone == "" {
		return "", fmt.Errorf("upload backbone %s: %d %s", o.Backbone, code, body)
	}
	return up.Backbone, nil
}

// ErrAlreadySeeded says the project has a dataset already; nothing was imported.
var ErrAlreadySeeded = errors.New("project already has a dataset")

// Bootstrap creates the project and imports the seed through the curator API.
func Bootstrap(ctx context.Context, o *BootstrapOptions, log *zap.Logger) error {
	spec, err := datasets.Parse(o.Dataset)
	if err != nil {
		return err
	}
	model := o.Model
	if model == nil {
		model = spec.Model()
	}
	p := project.Project{ID: o.Project, Task: string(spec.Task()), Classes: spec.ClassNames(), Model: model,
		Mirror:  spec.Mirroring(), // which classes a flip may mirror, should the project turn flips on
		Batch:   project.BatchSettings{Min: o.BatchMin, Max: o.BatchMax, MaxWait: config.Duration(o.MaxWait)},
		Retrain: project.RetrainPolicy{Epochs: o.Epochs}}
	if o.Backbone != "" {
		if p.Model == nil {
			return fmt.Errorf("backbone %s: dataset %s trains the built-in network, which takes no MobileNetV2 backbone", o.Backbone, o.Dataset)
		}
		m := *p.Model // o.Model is the caller's
		if m.Backbone, err = uploadBackbone(ctx, o); err != nil {
			return err
		}
		p.Model = &m
	}
	code, body, err := call(ctx, o, "POST", "/api/v1/projects", "application/json", mustJSON(p))
	if err != nil {
		return err
	}
	switch code {
	case http.StatusCreated:
		log.Info("project created", zap.String("project", o.Project), zap.String("task", p.Task), zap.String("backbone", o.Backbone))
	case http.StatusConflict:
		log.Info("project exists", zap.String("project", o.Project))
	default:
		return fmt.Errorf("create project %s: %d %s", o.Project, code, body)
	}
	code, body, err = call(ctx, o, "GET", "/api/v1/projects/"+o.Project+"/dataset", "", nil)
	if err != nil {
		return err
	}
	var ds project.DatasetView
	if code != http.StatusOK || json.Unmarshal(body, &ds) != nil {
		return fmt.Errorf("dataset of %s: %d %s", o.Project, code, body)
	}
	if ds.Total > 0 {
		return fmt.Errorf("%w: %s holds %d examples", ErrAlreadySeeded, o.Project, ds.Total)
	}
	data, err := datasets.LoadFrom(spec, datasets.Sources{MNISTDir: o.MNISTDir, Log: log}, datasets.Sizes{Train: o.Limit, Val: 1, Test: 1}, o.Seed)
	if err != nil {
		return err
	}
	p.Defaults()
	var seeds []dataformat.SeedImage
	for i, s := range data.Train {
		si := dataformat.SeedImage{ID: fmt.Sprintf("seed-%05d", i), Data: s.Image.EncodePNG(), ContentType: "image/png",
			Width: s.Image.W, Height: s.Image.H, Split: "train"}
		if s.Image.Channels() == 3 { // as a colour camera would send it
			si.Data, si.ContentType = s.Image.EncodeJPEG(90), "image/jpeg"
		}
		if spec.Task() == "classify" {
			si.Labels = []project.Label{{Class: p.Classes[s.Label]}}
		}
		for _, b := range s.Boxes {
			si.Labels = append(si.Labels, project.Label{Class: p.Classes[b.Class], Box: &project.Box{X0: b.X0, Y0: b.Y0, X1: b.X1, Y1: b.Y1}})
		}
		seeds = append(seeds, si)
	}
	zipData, err := dataformat.SeedArchive(&p, seeds)
	if err != nil {
		return err
	}
	code, body, err = call(ctx, o, "POST", "/api/v1/projects/"+o.Project+"/dataset/import?format=coco", "application/zip", zipData)
	if err != nil {
		return err
	}
	if code != http.StatusCreated {
		return fmt.Errorf("import seed into %s: %d %s", o.Project, code, body)
	}
	log.Info("seed dataset imported; retrain will train version 1", zap.String("project", o.Project), zap.String("dataset", spec.String()), zap.Int("examples", len(seeds)))
	return nil
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func call(ctx context.Context, o *BootstrapOptions, method, path, ct string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(o.API, "/")+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+o.Token)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
