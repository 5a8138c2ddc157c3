package weights

import (
	"fmt"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// ImportDetector copies torchvision MobileNetV2 tensors ts onto the trunk of a, a
// multi-scale detector built by nn.DetectorPyramid (any pyramid), whose trunk is
// nn.Family's layer for layer: each trunk tensor takes the name TorchvisionNames gives
// it in the family classifier of the same size and input. The pyramid and heads keep p's values; the
// file's last 1×1 conv (features.18) and classifier are not used. Every trunk tensor
// must be in ts with its shape (a grey network sums an RGB stem over the colours), and
// no other file tensor may be left over; errors name the first that does not fit. It
// returns a with the trunk's batch norms at PyTorch's ε and logs "transferred X/Y".
func ImportDetector(a nn.Arch, p *nn.Params, ts map[string]Tensor, log *zap.Logger) (nn.Arch, error) {
	size, ok := detectorSize(a)
	if !ok {
		return nn.Arch{}, fmt.Errorf("weights: arch %s is not a %s detector (nn.DetectorPyramid)", a.Name, nn.MobileNetV2)
	}
	cls, err := nn.Family(nn.MobileNetV2, size, a.InW, a.InH, a.InC, 1)
	if err != nil {
		return nn.Arch{}, fmt.Errorf("weights: %s: %w", a.Name, err)
	}
	names, err := TorchvisionNames(cls)
	if err != nil {
		return nn.Arch{}, err
	}
	clsSpecs, _, _ := cls.Analyse()
	if len(p.Specs) < len(clsSpecs) {
		return nn.Arch{}, fmt.Errorf("weights: %d parameter tensors for arch %s", len(p.Specs), a.Name)
	}
	if err := checkUnfolded(ts); err != nil {
		return nn.Arch{}, err
	}
	used := map[string]bool{}
	trunk, transferred := 0, 0
	for k, s := range p.Specs {
		if s.Layer >= a.HeadFrom {
			break
		}
		trunk++
		if c := clsSpecs[k]; c.Name != s.Name || !slices.Equal(c.Shape, s.Shape) {
			return nn.Arch{}, fmt.Errorf("weights: %s's trunk tensor %s %v is not the family's %s %v", a.Name, s.Name, []int(s.Shape), c.Name, []int(c.Shape))
		}
		name := names[k]
		used[name] = true
		if err := copyTensor(a, p, k, ts, name); err != nil {
			return nn.Arch{}, err
		}
		transferred++
	}
	if err := checkLeftover(ts, used, a.Name+"'s trunk", "classifier.", "features.18."); err != nil {
		return nn.Arch{}, err
	}
	log.Info("transferred pretrained tensors", zap.String("arch", a.Name), zap.String("transferred", fmt.Sprintf("%d/%d", transferred, trunk)))
	return withTorchEps(a, a.HeadFrom), nil
}

// detectorSize is the family size of a, a detector named by nn.DetectorPyramid
// (NAME-SIZE-det, or NAME-SIZE-det-PYRAMID for another pyramid than P3), and whether a
// is one.
func detectorSize(a nn.Arch) (string, bool) {
	rest, ok := strings.CutPrefix(a.Name, nn.MobileNetV2+"-")
	size, suffix, ok2 := strings.Cut(rest, "-det")
	pyramid := strings.TrimPrefix(suffix, "-")
	_, known := nn.PyramidStrides(pyramid)
	if !ok || !ok2 || len(a.Levels) == 0 || !known || nn.PyramidSuffix(pyramid) != suffix {
		return "", false
	}
	return size, true
}

// BackboneDetector builds the nn.DetectorPyramid detector with pyramid ("": P3) whose
// trunk width the torchvision weights file at path has (FamilySize), for inW×inH images
// of channels channels and classes classes: the trunk is the file's, the pyramid and
// heads are initialised from seed.
func BackboneDetector(path, pyramid string, inW, inH, channels, classes int, seed uint64, log *zap.Logger) (nn.Arch, *nn.Params, error) {
	return fromFile(path, seed,
		func(size string) (nn.Arch, error) {
			return nn.DetectorPyramid(nn.MobileNetV2, size, pyramid, inW, inH, channels, classes)
		},
		func(a nn.Arch, p *nn.Params, ts map[string]Tensor) (nn.Arch, error) {
			return ImportDetector(a, p, ts, log)
		})
}
