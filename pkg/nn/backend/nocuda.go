//go:build !edgeloop_cuda

package backend

import (
	"errors"

	"go.uber.org/zap"
)

func cuda(*zap.Logger) (Choice, error) {
	return Choice{}, errors.New("this binary was built without CUDA support (rebuild with -tags edgeloop_cuda)")
}
