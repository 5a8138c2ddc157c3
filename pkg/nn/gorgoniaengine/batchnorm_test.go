package gorgoniaengine

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestChannelStatsKeepSmallSpreads: batch norm's one-pass statistics stay exact when
// the mean is large against the spread (no E[x²] − E[x]² cancellation), against a
// two-pass float64 reference.
func TestChannelStatsKeepSmallSpreads(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	const n, c, hw = 4, 3, 5000
	for _, mean := range []float64{0, 10, 1e3, 1e4} {
		for _, sd := range []float64{1, 0.01} {
			x := make([]float32, n*c*hw)
			for i := range x {
				x[i] = float32(mean + sd*r.NormFloat64())
			}
			for ch := 0; ch < c; ch++ {
				var s float64
				for b := 0; b < n; b++ {
					for _, v := range x[(b*c+ch)*hw : (b*c+ch+1)*hw] {
						s += float64(v)
					}
				}
				wantMean := s / (n * hw)
				var ss float64
				for b := 0; b < n; b++ {
					for _, v := range x[(b*c+ch)*hw : (b*c+ch+1)*hw] {
						ss += (float64(v) - wantMean) * (float64(v) - wantMean)
					}
				}
				wantVar := ss / (n * hw)
				gotMean, gotVar := channelStats(x, c, hw, n, ch)
				if math.Abs(gotMean-wantMean) > 1e-9*(1+math.Abs(wantMean)) || math.Abs(gotVar-wantVar) > 1e-6*wantVar {
					t.Fatalf("mean %g sd %g channel %d: got %g, %g; want %g, %g", mean, sd, ch, gotMean, gotVar, wantMean, wantVar)
				}
			}
		}
	}
}
