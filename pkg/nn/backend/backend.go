// Package backend chooses what computes a training: the CUDA engine when the binary was
// built with `-tags edgeloop_cuda` and a GPU is present, else the Gorgonia CPU engine, with a
// warning when CUDA was asked for and is not available. Everything above it is one code
// path.
package backend

import (
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
)

// Factory builds engines.
type Factory func(nn.EngineConfig) (nn.Engine, error)

// Choice is a selected backend.
type Choice struct {
	Factory Factory
	// Name says what computes, e.g. "cuda (NVIDIA H200, 139 GiB)" or "cpu (gorgonia, OpenBLAS, AVX2 kernels)".
	Name string
}

// errNotBuilt says the binary has no CUDA engine: under "auto" that is the expected
// CPU build, not a fault worth a warning.
var errNotBuilt = errors.New("this binary was built without CUDA support (rebuild with -tags edgeloop_cuda)")

// Select returns the backend for pref: "auto" (CUDA if possible, else CPU), "cpu" or
// "cuda" (an error when unavailable).
func Select(pref string, log *zap.Logger) (Choice, error) {
	cpu := Choice{Factory: gorgoniaengine.Factory, Name: gorgoniaengine.Name()}
	switch pref {
	case "cpu":
		return cpu, nil
	case "", "auto", "cuda":
	default:
		return Choice{}, fmt.Errorf("backend %q: want auto, cpu or cuda", pref)
	}
	c, err := cuda(log)
	if err == nil {
		return c, nil
	}
	if pref == "cuda" {
		return Choice{}, fmt.Errorf("backend cuda: %w", err)
	}
	if errors.Is(err, errNotBuilt) {
		log.Info("training on the CPU", zap.String("engine", cpu.Name), zap.String("why", err.Error()))
	} else {
		log.Warn("CUDA unavailable, training on the CPU", zap.String("engine", cpu.Name), zap.Error(err))
	}
	return cpu, nil
}
