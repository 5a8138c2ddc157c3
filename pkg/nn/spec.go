package nn

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Ways an image is resized to a network's input (Preprocess.Resize).
const (
	// Stretch resizes the image to the input, not keeping its aspect ratio: the
	// built-in networks' way, and what a model file without preprocessing means.
	Stretch = "stretch"
	// Letterbox resizes the image to fit the input with its aspect ratio kept, centred
	// and padded with Preprocess.Fill (Ultralytics' way).
	Letterbox = "letterbox"
)

// Input normalisations of a Spec.
const (
	// NormNone feeds pixels in [0, 1] as they are.
	NormNone = "none"
	// NormImageNet feeds (x − mean)/std with ImageNet's per-colour statistics, as
	// torchvision's and timm's pretrained weights expect.
	NormImageNet = "imagenet"
)

// ImageNetMean and ImageNetStd are the per-colour (R, G, B) statistics of ImageNet that
// torchvision's pretrained weights were trained with.
func ImageNetMean() []float32 { return []float32{0.485, 0.456, 0.406} }

// ImageNetStd: see ImageNetMean.
func ImageNetStd() []float32 { return []float32{0.229, 0.224, 0.225} }

// DefaultFill is the grey (114/255) letterboxed inputs are padded with.
const DefaultFill = float32(114) / 255

// Preprocess says how an image becomes the network's input once its channels are the
// network's (colour to grey by luma, grey to colour by repetition): resized (Stretch,
// the zero value) or letterboxed, then normalised per channel when Mean is set.
type Preprocess struct {
	Resize string  `json:"resize,omitempty"`
	Fill   float32 `json:"fill,omitempty"`
	// Mean and Std normalise channel c to (x − Mean[c])/Std[c]; empty: pixels in [0, 1].
	Mean []float32 `json:"mean,omitempty"`
	Std  []float32 `json:"std,omitempty"`
}

// Letterboxed says whether the input keeps the image's aspect ratio.
func (p *Preprocess) Letterboxed() bool { return p != nil && p.Resize == Letterbox }

// Check validates the preprocessing of an input of channels channels.
func (p *Preprocess) Check(channels int) error {
	if p == nil {
		return nil
	}
	if p.Resize != "" && p.Resize != Stretch && p.Resize != Letterbox {
		return fmt.Errorf("preprocess: resize %q: want %s or %s", p.Resize, Stretch, Letterbox)
	}
	if p.Fill < 0 || p.Fill > 1 {
		return fmt.Errorf("preprocess: fill %v: want a value in [0, 1]", p.Fill)
	}
	if len(p.Mean) == 0 && len(p.Std) == 0 {
		return nil
	}
	if len(p.Mean) != channels || len(p.Std) != channels {
		return fmt.Errorf("preprocess: %d means and %d standard deviations for %d channels", len(p.Mean), len(p.Std), channels)
	}
	for c, s := range p.Std {
		if !(s > 0) {
			return fmt.Errorf("preprocess: std %v of channel %d: want > 0", s, c)
		}
	}
	return nil
}

// Spec is the network a project chooses: a family at a size, its input in pixels and
// channels, and how images are fitted to it.
type Spec struct {
	Family string `json:"family"`
	Size   string `json:"size"`
	// Input is the network's width and height in pixels.
	Input    [2]int `json:"input"`
	Channels int    `json:"channels"`
	// Resize is Letterbox (default) or Stretch.
	Resize string `json:"resize,omitempty"`
	// Normalize is NormNone (default: from scratch) or NormImageNet (for ImageNet
	// weights).
	Normalize string `json:"normalize,omitempty"`
	// Backbone is torchvision MobileNetV2 weights (.safetensors, or .onnx exported with
	// dynamo=True, optimize=False) that the project's first model starts from: the
	// family's trunk takes them, the head starts new for the project's classes. Either
	// an object of edgeloop's store, "s3:" + a key under BackbonePrefix (what
	// POST /api/v1/backbones answers), or an absolute path on the retrain service's
	// machine. Empty: from scratch.
	Backbone string `json:"backbone,omitempty"`
	// BackboneSHA256 is the hex sha256 of the backbone's bytes: the curator fills it
	// for a store backbone when the project is created, and the retrain service refuses
	// a file whose bytes differ. Empty for a path: not checked.
	BackboneSHA256 string `json:"backbone_sha256,omitempty"`
	// Pyramid is a detector's pyramid: PyramidP3 (the default, kept as empty by
	// Defaults, so that "p3" and no pyramid are the same setting) or PyramidP2, which
	// adds a stride-4 level for small objects.
	Pyramid string `json:"pyramid,omitempty"`
}

// StoreBackbone is the prefix of a Spec.Backbone that names an object of edgeloop's
// store rather than a file.
const StoreBackbone = "s3:"

// BackbonePrefix is where backbones are kept in edgeloop's store; a store backbone's key
// must be under it.
const BackbonePrefix = "backbones/"

// BackboneKey is the store key of the spec's backbone and true, or "" and false when the
// backbone is a path (or none).
func (s Spec) BackboneKey() (string, bool) {
	return strings.CutPrefix(s.Backbone, StoreBackbone)
}

// Input sides a Spec accepts, in pixels: multiples of SpecSideStep from SpecMinSide to
// SpecMaxSide (the family halves its input five times).
const (
	SpecMinSide  = 64
	SpecMaxSide  = 640
	SpecSideStep = 32
)

// Defaults fills the unset fields with the task's defaults: MobileNetV2 n, RGB,
// letterboxed, not normalised, at 96×96 for classification (Edge Impulse's input) and
// 160×160 for detection.
func (s *Spec) Defaults(task Task) {
	if s.Family == "" {
		s.Family = MobileNetV2
	}
	if s.Size == "" {
		s.Size = FamilySizes()[0]
	}
	if s.Input == [2]int{} {
		side := 96
		if task == Detect {
			side = 160
		}
		s.Input = [2]int{side, side}
	}
	if s.Channels == 0 {
		s.Channels = 3
	}
	if s.Resize == "" {
		s.Resize = Letterbox
	}
	if s.Normalize == "" {
		s.Normalize = NormNone
	}
	if s.Pyramid == PyramidP3 { // the default is kept as "", as specs had it before P2
		s.Pyramid = ""
	}
}

// Validate checks a spec (after Defaults) and says what is wrong with the first bad
// field.
func (s Spec) Validate() error {
	if s.Family != MobileNetV2 {
		return fmt.Errorf("model family %q unknown: want %s", s.Family, MobileNetV2)
	}
	if _, ok := familyWidth(s.Size); !ok {
		return fmt.Errorf("model size %q unknown: want one of %v", s.Size, FamilySizes())
	}
	for i, v := range s.Input {
		if v < SpecMinSide || v > SpecMaxSide || v%SpecSideStep != 0 {
			return fmt.Errorf("model input %s %d: want a multiple of %d from %d to %d", [2]string{"width", "height"}[i], v, SpecSideStep, SpecMinSide, SpecMaxSide)
		}
	}
	if s.Channels != 1 && s.Channels != 3 {
		return fmt.Errorf("model channels %d: want 1 (grey) or 3 (RGB)", s.Channels)
	}
	if s.Resize != Letterbox && s.Resize != Stretch {
		return fmt.Errorf("model resize %q: want %s or %s", s.Resize, Letterbox, Stretch)
	}
	if s.Normalize != NormNone && s.Normalize != NormImageNet {
		return fmt.Errorf("model normalize %q: want %s or %s", s.Normalize, NormNone, NormImageNet)
	}
	if b := s.Backbone; b != "" {
		key, inStore := s.BackboneKey()
		switch {
		case strings.ContainsRune(b, 0):
			return fmt.Errorf("model backbone %q: a NUL byte", b)
		case inStore && (!strings.HasPrefix(key, BackbonePrefix) || len(key) == len(BackbonePrefix) || strings.Contains(key, "..")):
			return fmt.Errorf("model backbone %q: want %s%sNAME, an object under %s in edgeloop's store (POST /api/v1/backbones puts one there)", b, StoreBackbone, BackbonePrefix, BackbonePrefix)
		case !inStore && !filepath.IsAbs(b):
			return fmt.Errorf("model backbone %q: want %s%sNAME (an object of edgeloop's store) or an absolute path on the retrain service's machine", b, StoreBackbone, BackbonePrefix)
		}
		if !strings.HasSuffix(b, ".safetensors") && !strings.HasSuffix(b, ".onnx") {
			return fmt.Errorf("model backbone %q: want a .safetensors or .onnx file", b)
		}
	}
	if h := s.BackboneSHA256; h != "" && (len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "") {
		return fmt.Errorf("model backbone_sha256 %q: want 64 lower-case hex digits", h)
	}
	if _, ok := PyramidStrides(s.Pyramid); !ok {
		return fmt.Errorf("model pyramid %q unknown: want one of %v", s.Pyramid, Pyramids())
	}
	if s.BackboneSHA256 != "" && s.Backbone == "" {
		return fmt.Errorf("model backbone_sha256 %q names no backbone", s.BackboneSHA256)
	}
	return nil
}

// Preprocess is how the spec's network takes images.
func (s Spec) Preprocess() *Preprocess {
	p := &Preprocess{Resize: s.Resize}
	if s.Resize == Letterbox {
		p.Fill = DefaultFill
	}
	if s.Normalize == NormImageNet {
		p.Mean, p.Std = ImageNetMean(), ImageNetStd()
		if s.Channels == 1 { // grey: the statistics of luma
			p.Mean, p.Std = []float32{luma(p.Mean)}, []float32{luma(p.Std)}
		}
	}
	return p
}

// luma is the Rec. 601 luma of an RGB triple.
func luma(c []float32) float32 { return 0.299*c[0] + 0.587*c[1] + 0.114*c[2] }

// Build makes the spec's network for task and classes, with its preprocessing.
func (s Spec) Build(task Task, classes int) (Arch, error) {
	if err := s.Validate(); err != nil {
		return Arch{}, err
	}
	a, err := FamilyFor(task, s.Family, s.Size, s.Pyramid, s.Input[0], s.Input[1], s.Channels, classes)
	if err != nil {
		return Arch{}, err
	}
	a.Preprocess = s.Preprocess()
	return a, nil
}

// Equal says whether two specs (nil: none) are the same.
func (s *Spec) Equal(o *Spec) bool {
	if s == nil || o == nil {
		return s == o
	}
	return *s == *o
}
