package bridge

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// Field numbers of edgeloopv1.Example.image and edgeloopv1.Image.data.
const (
	exampleImageField protowire.Number = 5
	imageDataField    protowire.Number = 1
)

// decodeExample decodes payload into ex as proto.Unmarshal does, except that the image
// bytes are not copied: ex.Image.Data points into payload, which must outlive ex. An
// example is mostly its image (~50 KB against a few hundred bytes of the rest), so this
// halves what the bridge allocates and copies per example. The rest is decoded by
// proto.Unmarshal from a copy without the image bytes, so every rule of the wire format
// (UTF-8 strings, unknown fields, a field given twice) stays proto's.
func decodeExample(payload []byte, ex *edgeloopv1.Example) error {
	rest, img, ok := cutField(payload, exampleImageField, nil)
	if !ok {
		return proto.Unmarshal(payload, ex) // a malformed or unusual payload: proto says why
	}
	if err := proto.Unmarshal(rest, ex); err != nil {
		return err
	}
	if img == nil {
		return nil
	}
	imgRest, data, ok := cutField(img, imageDataField, nil)
	if !ok {
		return proto.Unmarshal(payload, ex)
	}
	ex.Image = &edgeloopv1.Image{}
	if err := proto.Unmarshal(imgRest, ex.Image); err != nil {
		return err
	}
	if data != nil {
		ex.Image.Data = data
	}
	return nil
}

// cutField returns b without its one length-delimited field num (appended to dst) and
// that field's value, which aliases b; value is nil when b has no such field. ok is
// false when b does not parse or holds the field more than once (proto then merges or
// replaces: the caller falls back to proto.Unmarshal).
func cutField(b []byte, num protowire.Number, dst []byte) (rest, value []byte, ok bool) {
	found := false
	for in := b; len(in) > 0; {
		n, typ, tagLen := protowire.ConsumeTag(in)
		if tagLen < 0 {
			return nil, nil, false
		}
		valLen := protowire.ConsumeFieldValue(n, typ, in[tagLen:])
		if valLen < 0 {
			return nil, nil, false
		}
		field := in[:tagLen+valLen]
		if n == num && typ == protowire.BytesType {
			if found {
				return nil, nil, false
			}
			found = true
			value, _ = protowire.ConsumeBytes(in[tagLen:])
			if value == nil {
				value = []byte{}
			}
		} else {
			dst = append(dst, field...)
		}
		in = in[len(field):]
	}
	return dst, value, true
}
