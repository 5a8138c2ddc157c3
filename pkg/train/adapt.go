package train

import (
	"context"
	"fmt"
	"math"

	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
)

// AdaptBN re-estimates the running statistics of a's batch norm layers on unlabelled
// images of a site (the statistics part of Tent, Wang et al. ICLR 2021), leaving every
// weight as it is: a candidate for a site whose pictures differ from the training
// data, which the gate judges like any other. The images go through once in batches
// of batch (a last partial batch is left out: padding would bias the statistics), the
// momentum chosen so that the model's old statistics keep 1 % of their weight. It
// fails for a network without batch norm or with fewer images than one batch.
func AdaptBN(ctx context.Context, a nn.Arch, p *nn.Params, ims []*raster.Image, batch int, factory func(nn.EngineConfig) (nn.Engine, error)) (*nn.Params, error) {
	hasBN := false
	for _, l := range a.Layers {
		hasBN = hasBN || l.Kind == nn.BatchNorm
	}
	if !hasBN {
		return nil, fmt.Errorf("adapt batch norm: arch %s has no batch norm layer", a.Name)
	}
	batch = max(batch, 2)
	k := len(ims) / batch
	if k < 1 {
		return nil, fmt.Errorf("adapt batch norm: %d images, want at least a batch of %d", len(ims), batch)
	}
	m := 1 - math.Pow(0.01, 1/float64(k))
	e, err := factory(nn.EngineConfig{Arch: a, Params: p, BatchSize: batch, Trainable: make([]bool, len(p.Values)), BNMomentum: float32(m)})
	if err != nil {
		return nil, fmt.Errorf("adapt batch norm: %w", err)
	}
	defer e.Close()
	samples := make([]Sample, len(ims))
	for i, im := range ims {
		samples[i] = Sample{Image: im} // label 0: the loss is not used, no weight moves
	}
	for b := 0; b < k; b++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		idx := make([]int, batch)
		for i := range idx {
			idx[i] = b*batch + i
		}
		if _, err := e.Step(makeBatch(a, samples, idx, augment.None(), augment.None(), nil)); err != nil {
			return nil, fmt.Errorf("adapt batch norm: batch %d: %w", b, err)
		}
	}
	out := p.Clone()
	if err := e.ReadParams(out); err != nil {
		return nil, err
	}
	return out, nil
}
