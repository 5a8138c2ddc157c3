package enginetest

import "github.com/edgeloop/edgeloop/pkg/nn"

// TinyClassifier is an 8×8, three-class network small enough for finite differences.
func TinyClassifier() nn.Arch {
	return nn.Arch{Name: "tiny-cls", Task: nn.Classify, InC: 1, InH: 8, InW: 8, Classes: 3,
		Layers: []nn.Layer{{Kind: nn.Conv, Out: 4, K: 3, Pad: 1}, {Kind: nn.ReLU}, {Kind: nn.MaxPool},
			{Kind: nn.Flatten}, {Kind: nn.Dense, Out: 3}}, HeadFrom: 4}
}

// TinyDetector is an 8×8, two-class grid detector small enough for finite differences.
func TinyDetector() nn.Arch {
	return nn.Arch{Name: "tiny-det", Task: nn.Detect, InC: 1, InH: 8, InW: 8, Classes: 2,
		Layers: []nn.Layer{{Kind: nn.Conv, Out: 4, K: 3, Pad: 1}, {Kind: nn.ReLU}, {Kind: nn.MaxPool},
			{Kind: nn.Conv, Out: nn.DetectOut(2), K: 1}}, HeadFrom: 3}
}
