package bridge

import (
	"testing"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/internal/fixture"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// TestDecodeExampleIsProtoUnmarshal checks that decodeExample decodes every payload as
// proto.Unmarshal does, including the unusual ones it hands to proto, and that the
// image data of a plain example points into the payload instead of being copied.
func TestDecodeExampleIsProtoUnmarshal(t *testing.T) {
	ex := fixture.Example("p1", "d1", "ex-1")
	valid, err := proto.Marshal(ex)
	if err != nil {
		t.Fatal(err)
	}
	noImage := proto.Clone(ex).(*edgeloopv1.Example)
	noImage.Image = nil
	emptyImage := proto.Clone(ex).(*edgeloopv1.Example)
	emptyImage.Image = &edgeloopv1.Image{}
	enc := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// A second image field merges into the first; a second data field replaces it.
	twoImages := protowire.AppendBytes(protowire.AppendTag(append([]byte(nil), valid...), 5, protowire.BytesType),
		enc(&edgeloopv1.Image{ContentType: "image/jpeg", Data: []byte("other")}))
	twoData := protowire.AppendBytes(protowire.AppendTag(append([]byte(nil), valid...), 5, protowire.BytesType),
		protowire.AppendBytes(protowire.AppendTag(protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte("a")),
			1, protowire.BytesType), []byte("b")))
	badUTF8 := protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType),
		protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), []byte{0xff, 0xfe}))
	cases := map[string][]byte{
		"valid": valid, "no image": enc(noImage), "empty image": enc(emptyImage), "two image fields": twoImages,
		"two data fields": twoData, "truncated": valid[:len(valid)-3], "junk": []byte("\xff\xff\xff not a protobuf"),
		"content type not UTF-8": badUTF8, "empty": nil,
	}
	for name, b := range cases {
		want, got := &edgeloopv1.Example{}, &edgeloopv1.Example{}
		werr, gerr := proto.Unmarshal(b, want), decodeExample(b, got)
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%s: decodeExample error %v, proto.Unmarshal error %v", name, gerr, werr)
			continue
		}
		if werr == nil && !proto.Equal(want, got) {
			t.Errorf("%s: decodeExample gave %v, proto.Unmarshal %v", name, got, want)
		}
	}
	got := &edgeloopv1.Example{}
	if err := decodeExample(valid, got); err != nil {
		t.Fatal(err)
	}
	data := got.GetImage().GetData()
	start, end := uintptr(unsafe.Pointer(&valid[0])), uintptr(unsafe.Pointer(&valid[len(valid)-1]))
	if p := uintptr(unsafe.Pointer(&data[0])); p < start || p > end {
		t.Errorf("the image data was copied; want it to point into the payload")
	}
}
