package contract

import (
	"testing"

	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// Every enum value round-trips through its name, so configs, records and the wire
// cannot drift apart.
func TestSamplingKindNamesRoundTrip(t *testing.T) {
	for v := range edgeloopv1.SamplingKind_name {
		k := edgeloopv1.SamplingKind(v)
		if k == edgeloopv1.SamplingKind_SAMPLING_KIND_UNSPECIFIED {
			continue
		}
		got, ok := SamplingKindOf(SamplingKindName(k))
		if !ok || got != k {
			t.Errorf("%v: name %q maps back to %v, %v", k, SamplingKindName(k), got, ok)
		}
	}
	if SamplingKindName(edgeloopv1.SamplingKind_SAMPLING_KIND_OPERATOR_FLAGGED) != "operator_flagged" {
		t.Error("names are the enum's in lower case without its prefix")
	}
	for _, bad := range []string{"", "unspecified", "nope"} {
		if _, ok := SamplingKindOf(bad); ok {
			t.Errorf("%q is no sampling kind", bad)
		}
	}
	if UploadPriority(edgeloopv1.SamplingKind_SAMPLING_KIND_OPERATOR_FLAGGED) <= UploadPriority(edgeloopv1.SamplingKind_SAMPLING_KIND_LOW_CONFIDENCE) ||
		UploadPriority(edgeloopv1.SamplingKind_SAMPLING_KIND_LOW_CONFIDENCE) <= UploadPriority(edgeloopv1.SamplingKind_SAMPLING_KIND_RANDOM) {
		t.Error("operator flags before uncertainty before random")
	}
}
