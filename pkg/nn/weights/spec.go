package weights

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// Source names the weights file a network started from: its base name and the sha256
// of its bytes, for a model's lineage.
type Source struct {
	File   string
	SHA256 string
}

// FromSpec builds spec's network for task and classes (nn.Spec.Build, with its
// preprocessing) and initialises it from seed, then copies b, the bytes of the
// torchvision MobileNetV2 weights file that spec.Backbone names (project.Store.Backbone
// reads it from the store or the disk), onto its trunk: the whole backbone of a
// classifier (Import), the trunk of a detector (ImportDetector); the head stays new, for
// the project's classes. A file of another width, or with a tensor missing or of another
// shape, is an error naming the first tensor that does not fit and the file.
func FromSpec(spec nn.Spec, b []byte, task nn.Task, classes int, seed uint64, log *zap.Logger) (nn.Arch, *nn.Params, Source, error) {
	if spec.Backbone == "" {
		return nn.Arch{}, nil, Source{}, errors.New("weights: the model setting names no backbone")
	}
	a, err := spec.Build(task, classes)
	if err != nil {
		return nn.Arch{}, nil, Source{}, err
	}
	sum := sha256.Sum256(b)
	src := Source{File: path.Base(spec.Backbone), SHA256: hex.EncodeToString(sum[:])}
	ts, err := Decode(spec.Backbone, b)
	if err != nil {
		return nn.Arch{}, nil, Source{}, err
	}
	p, err := nn.InitParams(a, seed)
	if err != nil {
		return nn.Arch{}, nil, Source{}, err
	}
	built := a
	if task == nn.Detect {
		a, err = ImportDetector(built, p, ts, log)
	} else {
		a, err = Import(built, p, ts, Options{}, log)
	}
	if err != nil {
		return nn.Arch{}, nil, Source{}, fmt.Errorf("%w (backbone %s for %s)", err, spec.Backbone, built.Name)
	}
	return a, p, src, nil
}

// Decode decodes b, the bytes of the weights file name, by the name's extension
// (.safetensors or .onnx).
func Decode(name string, b []byte) (map[string]Tensor, error) {
	var ts map[string]Tensor
	var err error
	switch {
	case strings.HasSuffix(name, ".safetensors"):
		ts, err = DecodeSafetensors(b)
	case strings.HasSuffix(name, ".onnx"):
		ts, err = DecodeONNX(b)
	default:
		return nil, fmt.Errorf("weights: %s: want a .safetensors or .onnx file", name)
	}
	if err != nil {
		return nil, fmt.Errorf("weights: %s: %w", name, err)
	}
	return ts, nil
}
