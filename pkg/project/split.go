package project

import (
	"crypto/sha256"
	"encoding/binary"
)

// AssignSplit decides an example's split from its id: a stable hash in [0,1) against
// the fractions, falling back to train once val or test reached its cap. counts are
// the dataset's examples per split so far.
func AssignSplit(s SplitSettings, id string, counts map[string]int) string {
	sum := sha256.Sum256([]byte(id))
	u := float64(binary.BigEndian.Uint64(sum[:8])>>11) / float64(1<<53)
	switch {
	case u < s.Train:
	case u < s.Train+s.Val:
		if counts["val"] < s.ValCap {
			return "val"
		}
	default:
		if counts["test"] < s.TestCap {
			return "test"
		}
	}
	return "train"
}
