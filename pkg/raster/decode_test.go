package raster

import (
	"errors"
	"testing"

	"github.com/edgeloop/edgeloop/internal/fixture"
)

// TestDecodeRefusesBombsFromTheHeader: a small PNG that declares 16,000×16,000 pixels is
// refused from its header, before anything of its size is allocated.
func TestDecodeRefusesBombsFromTheHeader(t *testing.T) {
	bomb := fixture.PNGBomb(16000, 16000)
	t.Logf("bomb: %d bytes", len(bomb))
	var err error
	n := fixture.Allocated(func() { _, err = Decode(bomb) })
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
	if n > 8<<20 {
		t.Fatalf("refusing the bomb allocated %d MB", n>>20)
	}
	// Within a budget: decoded; over it: refused.
	small := fixture.PNG(64, 32)
	if im, err := DecodeLimited(small, 64*32); err != nil || im.W != 64 || im.H != 32 {
		t.Fatalf("64x32 within a 2048-pixel budget: %v", err)
	}
	if _, err := DecodeLimited(small, 64*32-1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("64x32 over a 2047-pixel budget: %v", err)
	}
}
