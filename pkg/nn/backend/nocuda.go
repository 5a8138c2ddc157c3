//go:build !edgeloop_cuda

package backend

import (
	"errors"

	"go.uber.org/zap"
)

func cuda(*zap.Logger) (Choice, error) { return Choice{}, errNotBuilt }

// errNotBuilt says the binary has no CUDA engine: under "auto" that is the expected
// CPU build, not a fault worth a warning.
var errNotBuilt = errors.New("this binary was built without CUDA support (rebuild with -tags edgeloop_cuda)")

func notBuilt(err error) bool { return errors.Is(err, errNotBuilt) }
