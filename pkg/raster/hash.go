package raster

import (
	"math/bits"
)

// Hash is a 64-bit difference hash (dHash) of an image: shrink to 9×8, and set a bit
// where a pixel is brighter than its right neighbour. Look-alike pictures differ in few
// bits; it ignores brightness and scale.
func Hash(im *Image) uint64 {
	small := Resize(im, 9, 8)
	var h uint64
	for y := 0; y < 8; y++ {
		for x := 0; x < 8; x++ {
			h <<= 1
			if small.Pix[y*9+x] > small.Pix[y*9+x+1] {
				h |= 1
			}
		}
	}
	return h
}

// HashDistance is the Hamming distance between two hashes.
func HashDistance(a, b uint64) int { return bits.OnesCount64(a ^ b) }
