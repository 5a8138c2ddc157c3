// Package retrain turns corrected examples into better models: the offline commands
// (train, eval, keygen, sign, verify) and the retrain service that fine-tunes on every
// approved batch, gates the candidate against the current release and publishes it.
package retrain

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/atomicfile"
	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/backend"
	"github.com/edgeloop/edgeloop/pkg/nn/weights"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// TrainOptions are the flags of `retrain train`.
type TrainOptions struct {
	Task    string
	Dataset string
	// Data is the user's dataset (a directory or a zip) in Format; it replaces Dataset.
	Data   string
	Format string
	// MaxPixels bounds one image of Data, read from its header before decoding.
	MaxPixels int
	// Model is the network (-model, -input, -channels, -resize, -normalize: the
	// project's model setting); zero: the dataset's default network.
	Model    nn.Spec
	Limit    int
	ValLimit int
	TestLim  int
	Parent   string
	Backbone string
	Out      string
	MNISTDir string
	Backend  string
	Key      string
	NoAug    bool
	Train    train.Config
}

// RegisterTrainFlags adds `retrain train`'s flags.
func RegisterTrainFlags(fs *flag.FlagSet) *TrainOptions {
	o := &TrainOptions{}
	fs.StringVar(&o.Task, "task", "", "classify or detect (default: the dataset's)")
	fs.StringVar(&o.Dataset, "dataset", "mnist", "mnist | digit-scenes, optionally :drift=NAME")
	fs.StringVar(&o.Data, "data", "", "your own images: a directory or a .zip (replaces -dataset); the dataset's train/val/test folders are kept, other images are split by the project rule (80/10/10, val and test at most 100)")
	fs.StringVar(&o.Format, "format", "auto", "format of -data: coco, yolo, voc, folders ([split/]class/image) or auto (from the files)")
	fs.IntVar(&o.MaxPixels, "max-pixels", raster.DefaultMaxPixels, "largest image of -data, in pixels (its header is read first; a larger image is skipped)")
	registerModelFlags(fs, &o.Model)
	fs.IntVar(&o.Limit, "limit", 0, "training examples (default: all of mnist's 55,000; 10,000 scenes)")
	fs.IntVar(&o.ValLimit, "val-limit", 0, "validation examples (default 5,000 mnist / 500 scenes)")
	fs.IntVar(&o.TestLim, "test-limit", 0, "test examples (default 10,000 mnist / 1,000 scenes)")
	fs.StringVar(&o.Parent, "parent", "", "model file to fine-tune from (default: train from scratch)")
	fs.StringVar(&o.Backbone, "backbone", "", "torchvision MobileNetV2 weights (.safetensors, or .onnx exported with dynamo=True, optimize=False) to start the backbone (a detector's trunk) from, as a project's model setting backbone does; the head is new, the images must be 32 px or more")
	fs.StringVar(&o.Out, "out", "out", "output directory")
	fs.StringVar(&o.MNISTDir, "mnist-dir", "", "MNIST data directory (default: the GoMNIST module in the Go module cache)")
	fs.StringVar(&o.Backend, "backend", "auto", "auto, cpu or cuda")
	fs.StringVar(&o.Key, "key", "", "ed25519 private key (PEM) to sign the model with")
	fs.BoolVar(&o.NoAug, "no-augment", false, "turn augmentation off")
	fs.IntVar(&o.Train.Epochs, "epochs", 10, "most epochs")
	fs.IntVar(&o.Train.BatchSize, "batch", 64, "batch size")
	var lr float64
	fs.Func("lr", "learning rate (default 1e-3, 1e-2 for a multi-scale detector (from a -backbone too), 3e-4 when fine-tuning a -parent)", func(s string) error {
		_, err := fmt.Sscan(s, &lr)
		o.Train.LR = float32(lr)
		return err
	})
	fs.StringVar(&o.Train.Schedule, "schedule", "cosine", "learning-rate schedule: cosine or constant")
	fs.IntVar(&o.Train.Patience, "patience", 3, "epochs without val-loss improvement before stopping")
	fs.Uint64Var(&o.Train.Seed, "seed", 1, "random seed")
	fs.BoolVar(&o.Train.FreezeBackbone, "freeze-backbone", false, "train the head only")
	fs.BoolVar(&o.Train.FreezeBN, "freeze-bn", false, "batch norm keeps its running statistics in training (fine-tuning a -backbone on small batches)")
	return o
}

// Metrics is metrics.json.
type Metrics struct {
	Task          nn.Task          `json:"task"`
	Dataset       string           `json:"dataset"`
	Classes       []string         `json:"classes,omitempty"`
	Network       string           `json:"network,omitempty"`
	Examples      map[string]int   `json:"examples"`
	EpochsRun     int              `json:"epochs_run"`
	BestEpoch     int              `json:"best_epoch"`
	StoppedEarly  bool             `json:"stopped_early"`
	Overfitting   bool             `json:"overfitting"`
	OverfitFrom   int              `json:"overfit_from,omitempty"`
	TrainLoss     []float64        `json:"train_loss"`
	ValLoss       []float64        `json:"val_loss"`
	ValMetricName string           `json:"val_metric_name"`
	ValMetric     []float64        `json:"val_metric"`
	TestAccuracy  *float64         `json:"test_accuracy,omitempty"`
	TestMAP50     *float64         `json:"test_map50,omitempty"`
	TestMAP5095   *float64         `json:"test_map50_95,omitempty"`
	Test          train.Evaluation `json:"test"`
	Warnings      []string         `json:"warnings,omitempty"`
	Engine        string           `json:"engine"`
	Seconds       float64          `json:"seconds"`
	ImagesPerSec  float64          `json:"images_per_sec"`
	Settings      train.Config     `json:"settings"`
	Model         ModelRef         `json:"model"`
	// Plan is the retrain service's choice of train examples (mode, new, replayed).
	Plan *Plan `json:"plan,omitempty"`
}

// ModelRef names a model file.
type ModelRef struct {
	File          string `json:"file"`
	SHA256        string `json:"sha256"`
	ParentSHA256  string `json:"parent_sha256,omitempty"`
	ParentVersion int64  `json:"parent_version,omitempty"`
}

// SetTest fills the headline test figures from an evaluation.
func (m *Metrics) SetTest(ev train.Evaluation) {
	m.Test = ev
	if c := ev.Classification; c != nil {
		m.TestAccuracy = &c.Accuracy
	}
	if d := ev.Detection; d != nil {
		m.TestMAP50, m.TestMAP5095 = &d.MAP50, &d.MAP5095
	}
}

// RunTrain is `retrain train`: it trains, evaluates on the test split and writes
// model.elm (+ .sha256, + .sig with -key), metrics.json and report.png to Out. It
// trains on a built-in dataset, or with Data on the user's images (a directory or a
// zip in COCO, YOLO, VOC or class folders), where an image that cannot be used is
// reported with its path and skipped.
func RunTrain(ctx context.Context, o *TrainOptions, log *zap.Logger, progress io.Writer) (*Metrics, error) {
	if o.Backbone != "" && o.Parent != "" {
		return nil, fmt.Errorf("-backbone %s and -parent %s: start from one of them", o.Backbone, o.Parent)
	}
	if o.Parent != "" && o.Model != (nn.Spec{}) {
		return nil, fmt.Errorf("-parent %s brings its own network: leave out -model, -input, -channels, -resize, -normalize and -pyramid", o.Parent)
	}
	ref := ModelRef{File: "model.elm"}
	var parent *artifact.Model
	var known []string
	if o.Parent != "" {
		m, sum, err := ReadModel(o.Parent)
		if err != nil {
			return nil, err
		}
		parent, known = m, m.Header.Classes
		ref.ParentSHA256, ref.ParentVersion = sum, m.Header.Version
	}
	src, err := openSource(o.Dataset, o.MNISTDir, o.Data, o.Format, o.MaxPixels, nn.Task(o.Task), known)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	arch, classes := src.arch, src.classes
	init, err := nn.InitParams(arch, o.Train.Seed)
	if err != nil {
		return nil, err
	}
	lineage := artifact.Lineage{Dataset: src.name, ParentSHA256: ref.ParentSHA256, ParentVersion: ref.ParentVersion}
	switch {
	case parent != nil:
		if parent.Header.Arch.Task != src.task {
			return nil, fmt.Errorf("parent %s is a %s model, dataset %s needs %s", o.Parent, parent.Header.Arch.Task, src.name, src.task)
		}
		arch, init, classes = parent.Header.Arch, parent.Params, parent.Header.Classes
		if o.Train.LR == 0 {
			o.Train.LR = 3e-4
		}
	case o.Backbone != "" || o.Model != (nn.Spec{}):
		spec := src.model(o.Model)
		if err := spec.Validate(); err != nil {
			return nil, err
		}
		if o.Backbone == "" {
			if arch, err = spec.Build(src.task, len(classes)); err != nil {
				return nil, err
			}
			if init, err = nn.InitParams(arch, o.Train.Seed); err != nil {
				return nil, err
			}
			break
		}
		// The service's way (weights.FromSpec): spec's network and preprocessing, the
		// trunk from the file, at the file's width unless -model names one.
		if spec.Backbone, err = filepath.Abs(o.Backbone); err != nil {
			return nil, fmt.Errorf("-backbone: %w", err)
		}
		file, err := os.ReadFile(spec.Backbone)
		if err != nil {
			return nil, fmt.Errorf("-backbone: %w", err)
		}
		if o.Model.Size == "" {
			ts, err := weights.Decode(spec.Backbone, file)
			if err != nil {
				return nil, fmt.Errorf("-backbone: %w", err)
			}
			if spec.Size, err = weights.FamilySize(ts); err != nil {
				return nil, fmt.Errorf("-backbone %s: %w", o.Backbone, err)
			}
		}
		var from weights.Source
		if arch, init, from, err = weights.FromSpec(spec, file, src.task, len(classes), o.Train.Seed, log); err != nil {
			return nil, fmt.Errorf("-backbone: %w", err)
		}
		lineage.Backbone, lineage.BackboneSHA256 = from.File, from.SHA256
	}
	if parent == nil && o.Train.LR == 0 {
		o.Train.LR = arch.ScratchLR()
	}
	if !o.NoAug {
		o.Train.Augment = augment.DefaultFor(arch)
	}
	choice, err := backend.Select(o.Backend, log)
	if err != nil {
		return nil, err
	}
	data, warnings, err := src.load(ctx, arch, datasets.Sizes{Train: o.Limit, Val: o.ValLimit, Test: o.TestLim}, nil, o.Train.Seed, log, progress)
	if err != nil {
		return nil, err
	}
	if src.files != nil && len(data.Test) == 0 && len(data.Val) > 0 {
		data.Test = data.Val
		warnings = append(warnings, "no test split: the test figures are on the val split, which also chose the best epoch (optimistic)")
	}
	bar := newProgressBar(progress)
	o.Train.Progress = bar.update
	start := time.Now()
	res, trainErr := train.Run(ctx, arch, init, classes, data, o.Train, choice.Factory)
	bar.finish()
	if res == nil {
		return nil, trainErr
	}
	if trainErr != nil {
		log.Error("training stopped; writing the best weights so far", zap.Error(trainErr))
	}
	m := &Metrics{
		Task: arch.Task, Dataset: src.name, Classes: classes, Network: arch.Name, EpochsRun: len(res.History), BestEpoch: res.BestEpoch,
		StoppedEarly: res.StoppedEarly, Overfitting: res.Overfitting, OverfitFrom: res.OverfitFrom,
		Examples: map[string]int{"train": res.Examples.Train, "val": res.Examples.Val, "test": res.Examples.Test},
		Warnings: append(warnings, res.Warnings...), Engine: res.Engine, Seconds: time.Since(start).Seconds(), Settings: o.Train, Model: ref,
		ValMetricName: map[nn.Task]string{nn.Classify: "val_accuracy", nn.Detect: "val_map50"}[arch.Task],
	}
	var imgs, secs float64
	for _, h := range res.History {
		m.TrainLoss, m.ValLoss, m.ValMetric = append(m.TrainLoss, h.TrainLoss), append(m.ValLoss, h.ValLoss), append(m.ValMetric, h.ValMetric)
		imgs += float64(res.Examples.Train)
		secs += h.Seconds
	}
	if secs > 0 {
		m.ImagesPerSec = imgs / secs
	}
	if len(data.Test) > 0 {
		ev, err := evaluateParams(choice.Factory, arch, res.Params, classes, data.Test, nil)
		if err != nil {
			return nil, err
		}
		m.SetTest(ev)
	} else {
		m.Warnings = append(m.Warnings, "no test examples: the model is not evaluated")
	}
	settings, _ := json.Marshal(o.Train)
	lineage.Settings = settings
	model := &artifact.Model{Header: artifact.Header{Arch: arch, Classes: classes, CreatedAt: time.Now().UTC(), Lineage: lineage,
		Metrics: map[string]float64{"test_" + headlineName(arch.Task): m.Test.Headline()}}, Params: res.Params}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	sum, err := WriteModel(filepath.Join(o.Out, ref.File), model, o.Key)
	if err != nil {
		return nil, err
	}
	m.Model.SHA256 = sum
	if err := writeJSON(filepath.Join(o.Out, "metrics.json"), m); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(o.Out, "report.png"), TrainingReport(m, classes, train.Augmented(arch, data.Train, o.Train.Augment, reportSamples, o.Train.Seed)), 0o644); err != nil {
		return nil, err
	}
	return m, trainErr
}

func headlineName(t nn.Task) string {
	if t == nn.Detect {
		return "map50"
	}
	return "accuracy"
}

// evaluateParams scores the model a, p on samples, detections decoded with the NMS of
// the decode setting d (nil: the defaults; train.EvaluateWith).
func evaluateParams(f backend.Factory, a nn.Arch, p *nn.Params, classes []string, samples []train.Sample, d *nn.Decoding) (train.Evaluation, error) {
	e, err := f(nn.EngineConfig{Arch: a, Params: p, BatchSize: 64})
	if err != nil {
		return train.Evaluation{}, err
	}
	defer e.Close()
	return train.EvaluateWith(e, a, classes, samples, 64, d)
}

// ReadModel reads and checks a model file; it returns the model and its sha256.
func ReadModel(path string) (*artifact.Model, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("model: %w", err)
	}
	m, err := artifact.Decode(b)
	if err != nil {
		return nil, "", fmt.Errorf("model %s: %w", path, err)
	}
	return m, artifact.SHA256(b), nil
}

// WriteModel writes path, path.sha256 and, with a key file, path.sig. It writes to a
// temporary name and renames, so that a reader never sees half a model.
func WriteModel(path string, m *artifact.Model, keyFile string) (string, error) {
	b, err := artifact.Encode(m)
	if err != nil {
		return "", err
	}
	sum := artifact.SHA256(b)
	if err := atomicfile.Write(path, b, 0o644); err != nil {
		return "", err
	}
	if err := atomicfile.Write(path+".sha256", []byte(sum+"  "+filepath.Base(path)+"\n"), 0o644); err != nil {
		return "", err
	}
	if keyFile != "" {
		priv, err := artifact.ReadPrivateKey(keyFile)
		if err != nil {
			return "", err
		}
		if err := atomicfile.Write(path+".sig", artifact.Sign(priv, b), 0o644); err != nil {
			return "", err
		}
	}
	return sum, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// EvalOptions are the flags of `retrain eval`.
type EvalOptions struct {
	Model, Dataset, Split, Out, MNISTDir, Backend string
	// Data and Format are the user's dataset, as `retrain train` takes them.
	Data, Format string
	MaxPixels    int
	Limit        int
	Seed         uint64
}

// RegisterEvalFlags adds `retrain eval`'s flags.
func RegisterEvalFlags(fs *flag.FlagSet) *EvalOptions {
	o := &EvalOptions{}
	fs.StringVar(&o.Model, "model", "", "model file")
	fs.StringVar(&o.Dataset, "dataset", "mnist", "mnist | digit-scenes, optionally :drift=NAME")
	fs.StringVar(&o.Data, "data", "", "your own images, as `retrain train -data` takes them (replaces -dataset)")
	fs.StringVar(&o.Format, "format", "auto", "format of -data: coco, yolo, voc, folders or auto")
	fs.IntVar(&o.MaxPixels, "max-pixels", raster.DefaultMaxPixels, "largest image of -data, in pixels")
	fs.StringVar(&o.Split, "split", "test", "train, val, test, or all (every image of -data)")
	fs.StringVar(&o.Out, "out", "", "write the evaluation as JSON here (default: stdout)")
	fs.StringVar(&o.MNISTDir, "mnist-dir", "", "MNIST data directory")
	fs.StringVar(&o.Backend, "backend", "auto", "auto, cpu or cuda")
	fs.IntVar(&o.Limit, "limit", 0, "examples to evaluate (default: the whole split)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the generated data (scenes, drift)")
	return o
}

// EvalResult is what `retrain eval` writes.
type EvalResult struct {
	Model    ModelRef         `json:"model"`
	Dataset  string           `json:"dataset"`
	Split    string           `json:"split"`
	Examples int              `json:"examples"`
	Headline float64          `json:"headline"`
	Metric   string           `json:"metric"`
	Eval     train.Evaluation `json:"evaluation"`
	Warnings []string         `json:"warnings,omitempty"`
}

// RunEval is `retrain eval`: it scores a model file on a split of a built-in dataset
// or of the user's images (whose classes must be among the model's).
func RunEval(ctx context.Context, o *EvalOptions, log *zap.Logger, stdout io.Writer) (*EvalResult, error) {
	if o.Model == "" {
		return nil, errors.New("eval: -model is required")
	}
	m, sum, err := ReadModel(o.Model)
	if err != nil {
		return nil, err
	}
	a := m.Header.Arch
	sz := datasets.Sizes{}
	switch o.Split {
	case "train":
		sz.Train = o.Limit
	case "val":
		sz.Val = o.Limit
	case "test":
		sz.Test = o.Limit
	case "all":
		if o.Data == "" {
			return nil, errors.New("eval: -split all needs -data")
		}
	default:
		return nil, fmt.Errorf("eval: split %q: want train, val, test or all", o.Split)
	}
	src, err := openSource(o.Dataset, o.MNISTDir, o.Data, o.Format, o.MaxPixels, a.Task, m.Header.Classes)
	if err != nil {
		return nil, fmt.Errorf("model %s (a %s model): %w", o.Model, a.Task, err)
	}
	defer src.Close()
	if src.files == nil && src.task != a.Task {
		return nil, fmt.Errorf("model %s is a %s model; dataset %s is for %s", o.Model, a.Task, src.name, src.task)
	}
	var only []string
	if o.Split != "all" {
		only = []string{o.Split}
	}
	data, warnings, err := src.load(ctx, a, sz, only, o.Seed, log, os.Stderr)
	if err != nil {
		return nil, err
	}
	samples := map[string][]train.Sample{"train": data.Train, "val": data.Val, "test": data.Test,
		"all": append(append(append([]train.Sample(nil), data.Train...), data.Val...), data.Test...)}[o.Split]
	if o.Split == "all" && o.Limit > 0 && o.Limit < len(samples) {
		samples = samples[:o.Limit]
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("eval: dataset %s has no %s examples", src.name, o.Split)
	}
	choice, err := backend.Select(o.Backend, log)
	if err != nil {
		return nil, err
	}
	ev, err := evaluateParams(choice.Factory, a, m.Params, m.Header.Classes, samples, m.Header.Decode)
	if err != nil {
		return nil, err
	}
	r := &EvalResult{Model: ModelRef{File: o.Model, SHA256: sum}, Dataset: src.name, Split: o.Split, Examples: len(samples),
		Headline: ev.Headline(), Metric: headlineName(a.Task), Eval: ev, Warnings: warnings}
	if o.Out != "" {
		return r, writeJSON(o.Out, r)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return r, enc.Encode(r)
}

// RunKeygen is `retrain keygen -out DIR`: signing.key (private) and signing.pub.
func RunKeygen(dir string, stdout io.Writer) error {
	pub, priv, err := artifact.GenerateKey()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	kp, pp := filepath.Join(dir, "signing.key"), filepath.Join(dir, "signing.pub")
	if _, err := os.Stat(kp); err == nil {
		return fmt.Errorf("keygen: %s exists; refusing to overwrite a signing key", kp)
	}
	if err := artifact.WriteKeys(kp, pp, pub, priv); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key %s: private %s, public %s\n", artifact.KeyID(pub), kp, pp)
	return nil
}

// RunSign is `retrain sign -model FILE -key KEY`: writes FILE.sig (and FILE.sha256).
func RunSign(model, key string, stdout io.Writer) error {
	b, err := os.ReadFile(model)
	if err != nil {
		return err
	}
	if _, err := artifact.Decode(b); err != nil {
		return fmt.Errorf("sign: %s: %w", model, err)
	}
	priv, err := artifact.ReadPrivateKey(key)
	if err != nil {
		return err
	}
	sum := artifact.SHA256(b)
	if err := atomicfile.Write(model+".sig", artifact.Sign(priv, b), 0o644); err != nil {
		return err
	}
	if err := atomicfile.Write(model+".sha256", []byte(sum+"  "+filepath.Base(model)+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signed %s (sha256 %s) with key %s\n", model, sum, artifact.KeyID(priv.Public().(ed25519.PublicKey)))
	return nil
}

// RunVerify is `retrain verify -model FILE -pub PUB [-sig FILE.sig]`: the file must
// decode, match its .sha256 when present, and carry a valid signature.
func RunVerify(model, pubFile, sigFile string, stdout io.Writer) error {
	b, err := os.ReadFile(model)
	if err != nil {
		return err
	}
	if _, err := artifact.Decode(b); err != nil {
		return fmt.Errorf("verify: %s: %w", model, err)
	}
	pub, err := artifact.ReadPublicKey(pubFile)
	if err != nil {
		return err
	}
	if sigFile == "" {
		sigFile = model + ".sig"
	}
	sig, err := os.ReadFile(sigFile)
	if err != nil {
		return fmt.Errorf("verify: signature: %w", err)
	}
	want := ""
	if s, err := os.ReadFile(model + ".sha256"); err == nil {
		want, _, _ = strings.Cut(strings.TrimSpace(string(s)), " ")
	}
	if err := artifact.Verify(pub, b, want, sig); err != nil {
		return fmt.Errorf("verify: %s: %w", model, err)
	}
	fmt.Fprintf(stdout, "%s: OK (sha256 %s, signed by key %s)\n", model, artifact.SHA256(b), artifact.KeyID(pub))
	return nil
}
