package contract

import (
	"strings"

	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// samplingKindPrefix is the protobuf enum's value prefix.
const samplingKindPrefix = "SAMPLING_KIND_"

// SamplingKindName is the name of a sampling kind in configs, records and the UI: the
// protobuf enum value without its prefix, in lower case ("operator_flagged"). The
// enum is the one definition; this is its spelling.
func SamplingKindName(k edgeloopv1.SamplingKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), samplingKindPrefix))
}

// SamplingKindOf is the enum value of a kind's name, and whether the name is one.
func SamplingKindOf(name string) (edgeloopv1.SamplingKind, bool) {
	v, ok := edgeloopv1.SamplingKind_value[samplingKindPrefix+strings.ToUpper(name)]
	if !ok || v == int32(edgeloopv1.SamplingKind_SAMPLING_KIND_UNSPECIFIED) {
		return edgeloopv1.SamplingKind_SAMPLING_KIND_UNSPECIFIED, false
	}
	return edgeloopv1.SamplingKind(v), true
}

// Pseudo reports whether a frame taken by kind is a pseudo-label (the model's own
// prediction on a frame it is sure of), which is never annotated, never in val or test,
// and trained on only as a weighted pseudo-label.
func Pseudo(k edgeloopv1.SamplingKind) bool {
	return k == edgeloopv1.SamplingKind_SAMPLING_KIND_CONFIDENT
}

// Upload priorities of the edge outbox, highest first out.
const (
	PriorityLow    = 0 // random and quota samples, pseudo-labels
	PriorityNormal = 1 // uncertain predictions
	PriorityHigh   = 2 // operator-flagged errors
)

// UploadPriority is the outbox priority of a frame taken for kind: operator flags
// first, then uncertainty, then random and quota samples.
func UploadPriority(k edgeloopv1.SamplingKind) int {
	switch k {
	case edgeloopv1.SamplingKind_SAMPLING_KIND_OPERATOR_FLAGGED:
		return PriorityHigh
	case edgeloopv1.SamplingKind_SAMPLING_KIND_CLOSE_TO_THRESHOLD, edgeloopv1.SamplingKind_SAMPLING_KIND_LOW_CONFIDENCE,
		edgeloopv1.SamplingKind_SAMPLING_KIND_DETECTION_COUNT:
		return PriorityNormal
	}
	return PriorityLow
}
