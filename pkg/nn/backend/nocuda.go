//go:build !edgeloop_cuda

package backend

import "go.uber.org/zap"

func cuda(*zap.Logger) (Choice, error) { return Choice{}, errNotBuilt }
