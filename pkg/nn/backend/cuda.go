//go:build edgeloop_cuda

package backend

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/nn/cudaengine"
)

// cuda opens GPU 0. The device lives as long as the process: its context, kernels and
// cuBLAS handle are shared by every engine built from it.
func cuda(log *zap.Logger) (Choice, error) {
	dev, err := cudaengine.Open(0)
	if err != nil {
		return Choice{}, err
	}
	log.Info("training on the GPU",
		zap.String("device", dev.Name),
		zap.Int64("memory_bytes", dev.Memory),
		zap.String("compute_capability", fmt.Sprintf("%d.%d", dev.Capability[0], dev.Capability[1])))
	return Choice{Factory: dev.Factory, Name: "cuda (" + dev.String() + ")"}, nil
}
