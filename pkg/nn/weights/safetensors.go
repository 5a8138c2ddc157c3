// Package weights brings weights trained elsewhere into edgeloop's networks: it reads
// safetensors files (what PyTorch users save with safetensors.torch.save_file) and the
// initializers of ONNX models, and maps torchvision's MobileNetV2 tensors by name and
// shape onto the nn.Family networks, so a project can start from a backbone PyTorch
// users already have. docs/models.md ("Pretrained weights") says what maps and how it
// is checked.
package weights

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
)

// Tensor is one named tensor of a weights file, converted to float32, row-major.
type Tensor struct {
	Shape []int
	Data  []float32
}

// maxHeader bounds a safetensors header (the format's own limit is 100 MB).
const maxHeader = 100 << 20

// ReadSafetensors reads every tensor of the safetensors file at path. F32 is read as
// it is; F16, BF16 and F64 are converted to float32. Integer tensors (such as batch
// norm's num_batches_tracked) are skipped: no network parameter is an integer.
func ReadSafetensors(path string) (map[string]Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("weights: read %s: %w", path, err)
	}
	ts, err := DecodeSafetensors(b)
	if err != nil {
		return nil, fmt.Errorf("weights: %s: %w", path, err)
	}
	return ts, nil
}

// DecodeSafetensors decodes a safetensors file held in b: an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}} (and an optional
// __metadata__ of strings), then the tensors' bytes.
func DecodeSafetensors(b []byte) (map[string]Tensor, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("safetensors: %d bytes, shorter than the 8-byte header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > maxHeader || n > uint64(len(b)-8) {
		return nil, fmt.Errorf("safetensors: header of %d bytes in a file of %d", n, len(b))
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &header); err != nil {
		return nil, fmt.Errorf("safetensors: header: %w", err)
	}
	data := b[8+n:]
	names := make([]string, 0, len(header))
	for name := range header {
		if name != "__metadata__" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	ts := make(map[string]Tensor, len(names))
	for _, name := range names {
		var h struct {
			DType   string   `json:"dtype"`
			Shape   []int    `json:"shape"`
			Offsets []uint64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(header[name], &h); err != nil {
			return nil, fmt.Errorf("safetensors: tensor %s: %w", name, err)
		}
		if len(h.Offsets) != 2 || h.Offsets[0] > h.Offsets[1] || h.Offsets[1] > uint64(len(data)) {
			return nil, fmt.Errorf("safetensors: tensor %s: data_offsets %v outside the %d data bytes", name, h.Offsets, len(data))
		}
		raw := data[h.Offsets[0]:h.Offsets[1]]
		count := 1
		for _, d := range h.Shape {
			if d < 0 {
				return nil, fmt.Errorf("safetensors: tensor %s: shape %v", name, h.Shape)
			}
			count *= d
		}
		size, ok := map[string]int{"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}[h.DType]
		if !ok {
			return nil, fmt.Errorf("safetensors: tensor %s: dtype %q unsupported (want F32, F16, BF16 or F64)", name, h.DType)
		}
		if len(raw) != count*size {
			return nil, fmt.Errorf("safetensors: tensor %s: %d bytes for %s %v, want %d", name, len(raw), h.DType, h.Shape, count*size)
		}
		t := Tensor{Shape: slices.Clone(h.Shape), Data: make([]float32, count)}
		switch h.DType {
		case "F32":
			for i := range t.Data {
				t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		case "F64":
			for i := range t.Data {
				t.Data[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
			}
		case "BF16":
			for i := range t.Data {
				t.Data[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
			}
		case "F16":
			for i := range t.Data {
				t.Data[i] = halfToFloat(binary.LittleEndian.Uint16(raw[2*i:]))
			}
		default:
			continue // integer tensors are counters, not weights
		}
		ts[name] = t
	}
	return ts, nil
}

// halfToFloat converts an IEEE 754 half-precision number to float32.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
	case frac == 0:
		return math.Float32frombits(sign)
	}
	// subnormal: frac·2⁻²⁴
	v := float32(frac) / (1 << 24)
	if sign != 0 {
		v = -v
	}
	return v
}

// EncodeSafetensors writes tensors as a safetensors file (F32, little-endian, in name
// order), with metadata (may be nil) as the header's __metadata__: what
// safetensors.torch.load_file reads.
func EncodeSafetensors(ts map[string]Tensor, metadata map[string]string) ([]byte, error) {
	names := make([]string, 0, len(ts))
	for n := range ts {
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off uint64
	for _, n := range names {
		t := ts[n]
		count := 1
		for _, d := range t.Shape {
			count *= d
		}
		if count != len(t.Data) {
			return nil, fmt.Errorf("safetensors: tensor %s: %d values for shape %v", n, len(t.Data), t.Shape)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[n] = map[string]any{"dtype": "F32", "shape": shape, "data_offsets": []uint64{off, off + 4*uint64(count)}}
		off += 4 * uint64(count)
	}
	h, err := json.Marshal(header)
	if err != nil {
		return nil, fmt.Errorf("safetensors: header: %w", err)
	}
	for len(h)%8 != 0 { // the format pads the header with spaces to 8 bytes
		h = append(h, ' ')
	}
	out := make([]byte, 8, 8+len(h)+int(off))
	binary.LittleEndian.PutUint64(out, uint64(len(h)))
	out = append(out, h...)
	for _, n := range names {
		for _, v := range ts[n].Data {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
		}
	}
	return out, nil
}
