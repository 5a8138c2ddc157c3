package weights

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// TorchBNEps is the ε of PyTorch's BatchNorm2d, which torchvision's MobileNetV2 keeps.
const TorchBNEps = 1e-5

// TorchvisionNames returns, for each parameter of a (a MobileNetV2 built by nn.Family,
// in Arch.Analyse's order), the name torchvision's mobilenet_v2 gives the same tensor:
// features.0.0.weight for the stem conv, features.0.1.{weight, bias, running_mean,
// running_var} for its batch norm, features.N.conv.K[.0|.1] inside block N,
// features.18.* for the last 1×1 conv, classifier.1.{weight, bias} for the dense head.
// The layers are in the same order in both, so the mapping follows the layer walk;
// Import checks every shape.
func TorchvisionNames(a nn.Arch) ([]string, error) {
	if !strings.HasPrefix(a.Name, nn.MobileNetV2+"-") {
		return nil, fmt.Errorf("weights: arch %s is not of the %s family", a.Name, nn.MobileNetV2)
	}
	specs, _, err := a.Analyse()
	if err != nil {
		return nil, err
	}
	kind := func(i int) string {
		if i < len(a.Layers) {
			return a.Layers[i].Kind
		}
		return ""
	}
	prefix := make(map[int]string) // layer index → torchvision module path
	feature, module := 0, 0
	for i, l := range a.Layers {
		switch l.Kind {
		case nn.Conv:
			if kind(i+1) != nn.BatchNorm {
				return nil, fmt.Errorf("weights: arch %s layer %d: conv without batch norm, not a %s layout", a.Name, i, nn.MobileNetV2)
			}
			activated := kind(i+2) == nn.ReLU6
			switch {
			case feature == 0: // stem: Conv2dNormActivation
				prefix[i], prefix[i+1] = "features.0.0", "features.0.1"
				feature = 1
			case activated && kind(i+3) == nn.GlobalAvgPool: // last 1×1 conv
				prefix[i], prefix[i+1] = fmt.Sprintf("features.%d.0", feature), fmt.Sprintf("features.%d.1", feature)
			case activated: // expand or depthwise: Conv2dNormActivation inside the block
				prefix[i], prefix[i+1] = fmt.Sprintf("features.%d.conv.%d.0", feature, module), fmt.Sprintf("features.%d.conv.%d.1", feature, module)
				module++
			default: // linear projection: plain Conv2d and BatchNorm2d, the block's end
				prefix[i], prefix[i+1] = fmt.Sprintf("features.%d.conv.%d", feature, module), fmt.Sprintf("features.%d.conv.%d", feature, module+1)
				feature, module = feature+1, 0
			}
		case nn.Dense:
			prefix[i] = "classifier.1"
		}
	}
	names := make([]string, len(specs))
	seen := make(map[int]int)
	for k, s := range specs {
		p, ok := prefix[s.Layer]
		if !ok {
			return nil, fmt.Errorf("weights: arch %s: parameter %s has no torchvision name", a.Name, s.Name)
		}
		suffixes := []string{"weight", "bias"}
		if a.Layers[s.Layer].Kind == nn.BatchNorm {
			suffixes = []string{"weight", "bias", "running_mean", "running_var"}
		}
		names[k] = p + "." + suffixes[seen[s.Layer]]
		seen[s.Layer]++
	}
	return names, nil
}

// Options say how Import maps a file.
type Options struct {
	// Head also imports the classifier (classifier.1), whose classes must then match
	// the network's; by default the head keeps its initialisation, for the project's
	// own classes.
	Head bool
}

// Import copies torchvision MobileNetV2 tensors ts onto p, the parameters of a (built
// by nn.Family), and returns a with every batch norm's ε set to PyTorch's 1e-5. Every
// backbone tensor must be in ts with its shape (a grey network takes the sum of an RGB
// stem's filters over the colours); the first missing or mismatched tensor is an error
// that names both shapes, and so is a tensor of ts that maps to nothing. It logs
// "transferred X/Y tensors".
func Import(a nn.Arch, p *nn.Params, ts map[string]Tensor, o Options, log *zap.Logger) (nn.Arch, error) {
	names, err := TorchvisionNames(a)
	if err != nil {
		return nn.Arch{}, err
	}
	if len(p.Values) != len(names) {
		return nn.Arch{}, fmt.Errorf("weights: %d parameter tensors for arch %s, which has %d", len(p.Values), a.Name, len(names))
	}
	if err := checkUnfolded(ts); err != nil {
		return nn.Arch{}, err
	}
	used := make(map[string]bool, len(names))
	transferred := 0
	for k, name := range names {
		s := p.Specs[k]
		head := s.Layer >= a.HeadFrom
		used[name] = true
		if head && !o.Head {
			continue
		}
		if err := copyTensor(a, p, k, ts, name); err != nil {
			return nn.Arch{}, err
		}
		transferred++
	}
	if err := checkLeftover(ts, used, a.Name, "classifier."); err != nil {
		return nn.Arch{}, err
	}
	log.Info("transferred pretrained tensors", zap.String("arch", a.Name),
		zap.String("transferred", fmt.Sprintf("%d/%d", transferred, len(names))), zap.Bool("head", o.Head))
	return withTorchEps(a, len(a.Layers)), nil
}

// checkUnfolded refuses a file whose batch norms were folded into conv biases at
// export: the family keeps them as layers of their own.
func checkUnfolded(ts map[string]Tensor) error {
	if _, ok := ts["features.0.0.bias"]; ok {
		return errors.New("weights: the file's convs have biases (features.0.0.bias): its batch norms were folded into them at export; " +
			"save the state_dict as safetensors, or export ONNX with torch.onnx.export(..., dynamo=True, optimize=False)")
	}
	return nil
}

// copyTensor copies the file tensor name onto parameter k of p, in the layout of a's
// parameter; the error names the tensor and, for a missing one, the parameter it was
// for.
func copyTensor(a nn.Arch, p *nn.Params, k int, ts map[string]Tensor, name string) error {
	s := p.Specs[k]
	t, ok := ts[name]
	if !ok {
		return fmt.Errorf("weights: %s (%s %v) is not in the file", name, s.Name, []int(s.Shape))
	}
	v, err := convert(t, s, a.Layers[s.Layer].Kind)
	if err != nil {
		return fmt.Errorf("weights: %s: %w", name, err)
	}
	copy(p.Values[k], v)
	return nil
}

// checkLeftover names the first file tensor, in name order, that was not used and is
// neither a batch-norm step counter nor under one of the skipped prefixes: such a file
// is another architecture or width than arch.
func checkLeftover(ts map[string]Tensor, used map[string]bool, arch string, skipped ...string) error {
	for _, name := range slices.Sorted(maps.Keys(ts)) {
		if used[name] || strings.HasSuffix(name, ".num_batches_tracked") ||
			slices.ContainsFunc(skipped, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		return fmt.Errorf("weights: file tensor %s %v maps to nothing in %s (another architecture or width?)", name, ts[name].Shape, arch)
	}
	return nil
}

// withTorchEps returns a with the ε of its batch norms before layer upTo set to
// PyTorch's, on a copy of its layers.
func withTorchEps(a nn.Arch, upTo int) nn.Arch {
	a.Layers = slices.Clone(a.Layers)
	for i := range upTo {
		if a.Layers[i].Kind == nn.BatchNorm {
			a.Layers[i].Eps = TorchBNEps
		}
	}
	return a
}

// convert returns t's values in the layout of parameter s of a layer of kind kind:
// conv weights are (O, C/G, K, K) in both, a Linear's (out, in) transposes to a dense
// (in, out), and an RGB stem sums over the colours for a grey network.
func convert(t Tensor, s nn.ParamSpec, kind string) ([]float32, error) {
	want := []int(s.Shape)
	mismatch := func() error {
		return fmt.Errorf("shape %v in the file, %s wants %v", t.Shape, s.Name, want)
	}
	switch {
	case kind == nn.Dense && len(want) == 2:
		if !slices.Equal(t.Shape, []int{want[1], want[0]}) {
			return nil, fmt.Errorf("shape %v in the file, %s wants (out, in) %v", t.Shape, s.Name, []int{want[1], want[0]})
		}
		in, out := want[0], want[1]
		v := make([]float32, in*out)
		for o := 0; o < out; o++ {
			for i := 0; i < in; i++ {
				v[i*out+o] = t.Data[o*in+i]
			}
		}
		return v, nil
	case kind == nn.Conv && len(want) == 4 && want[1] == 1 && len(t.Shape) == 4 && t.Shape[1] == 3 &&
		slices.Equal(t.Shape[2:], want[2:]) && t.Shape[0] == want[0] && s.Layer == 0:
		o, k2 := want[0], want[2]*want[3]
		v := make([]float32, o*k2)
		for f := 0; f < o; f++ {
			for c := 0; c < 3; c++ {
				for j := 0; j < k2; j++ {
					v[f*k2+j] += t.Data[(f*3+c)*k2+j]
				}
			}
		}
		return v, nil
	case !slices.Equal(t.Shape, want):
		return nil, mismatch()
	}
	return t.Data, nil
}

// Export is Import's inverse: the parameters p of a (built by nn.Family) under
// torchvision's mobilenet_v2 names and layouts (a dense (in, out) weight transposed to
// the Linear's (out, in)), with the head unless head is false, for
// EncodeSafetensors: a file that Backbone and torchvision's load_state_dict read.
func Export(a nn.Arch, p *nn.Params, head bool) (map[string]Tensor, error) {
	names, err := TorchvisionNames(a)
	if err != nil {
		return nil, err
	}
	if len(p.Values) != len(names) {
		return nil, fmt.Errorf("weights: %d parameter tensors for arch %s, which has %d", len(p.Values), a.Name, len(names))
	}
	ts := make(map[string]Tensor, len(names))
	for k, name := range names {
		s := p.Specs[k]
		if s.Layer >= a.HeadFrom && !head {
			continue
		}
		v, shape := slices.Clone(p.Values[k]), slices.Clone([]int(s.Shape))
		if a.Layers[s.Layer].Kind == nn.Dense && len(shape) == 2 {
			in, out := shape[0], shape[1]
			for o := 0; o < out; o++ {
				for i := 0; i < in; i++ {
					v[o*in+i] = p.Values[k][i*out+o]
				}
			}
			shape = []int{out, in}
		}
		ts[name] = Tensor{Shape: shape, Data: v}
	}
	return ts, nil
}

// FamilySize finds the nn.Family size whose MobileNetV2 has the widths of the
// torchvision tensors ts (by the last block's projection, features.17.conv.2.weight).
func FamilySize(ts map[string]Tensor) (string, error) {
	const probe = "features.17.conv.2.weight"
	t, ok := ts[probe]
	if !ok || len(t.Shape) != 4 {
		return "", fmt.Errorf("weights: no %s (O, C, 1, 1) in the file: not a torchvision %s", probe, nn.MobileNetV2)
	}
	var have []string
	for _, size := range nn.FamilySizes() {
		a, err := nn.Family(nn.MobileNetV2, size, 32, 32, 3, 1)
		if err != nil {
			return "", err
		}
		specs, _, _ := a.Analyse()
		names, err := TorchvisionNames(a)
		if err != nil {
			return "", err
		}
		for k, n := range names {
			if n == probe {
				if slices.Equal(specs[k].Shape, t.Shape) {
					return size, nil
				}
				have = append(have, fmt.Sprintf("%s %v", size, []int(specs[k].Shape)))
			}
		}
	}
	return "", fmt.Errorf("weights: %s is %v, no %s size has it (%s)", probe, t.Shape, nn.MobileNetV2, strings.Join(have, ", "))
}

// Backbone builds the nn.Family MobileNetV2 whose width the torchvision weights file
// at path (.safetensors or .onnx, see ReadFile) has, for inW×inH images of channels channels and classes classes: the
// backbone is the file's, the head is initialised from seed for the project's classes.
func Backbone(path string, inW, inH, channels, classes int, seed uint64, log *zap.Logger) (nn.Arch, *nn.Params, error) {
	return fromFile(path, seed,
		func(size string) (nn.Arch, error) {
			return nn.Family(nn.MobileNetV2, size, inW, inH, channels, classes)
		},
		func(a nn.Arch, p *nn.Params, ts map[string]Tensor) (nn.Arch, error) {
			return Import(a, p, ts, Options{}, log)
		})
}

// fromFile reads the torchvision weights file at path, builds the network of its width
// (FamilySize) with build, initialises it from seed and copies the file onto it with
// imp; an error of the file's names it.
func fromFile(path string, seed uint64, build func(size string) (nn.Arch, error),
	imp func(nn.Arch, *nn.Params, map[string]Tensor) (nn.Arch, error)) (nn.Arch, *nn.Params, error) {
	ts, err := ReadFile(path)
	if err != nil {
		return nn.Arch{}, nil, err
	}
	size, err := FamilySize(ts)
	if err != nil {
		return nn.Arch{}, nil, fmt.Errorf("%w (%s)", err, path)
	}
	a, err := build(size)
	if err != nil {
		return nn.Arch{}, nil, err
	}
	p, err := nn.InitParams(a, seed)
	if err != nil {
		return nn.Arch{}, nil, err
	}
	if a, err = imp(a, p, ts); err != nil {
		return nn.Arch{}, nil, fmt.Errorf("%w (%s)", err, path)
	}
	return a, p, nil
}
