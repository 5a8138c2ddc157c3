package weights

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// torchTensors returns p as torchvision would name and lay it out.
func torchTensors(t *testing.T, a nn.Arch, p *nn.Params) map[string]Tensor {
	t.Helper()
	ts, err := Export(a, p, true)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestExportRoundTrip: a family network's parameters exported under torchvision's
// names, written as safetensors and read back by Backbone come back exactly (the
// head new), and with the head every tensor equals the original.
func TestExportRoundTrip(t *testing.T) {
	a, _ := nn.Family(nn.MobileNetV2, "n", 64, 64, 3, 5)
	p, _ := nn.InitParams(a, 4)
	for k := range p.Values { // running statistics too, not just their initial 0 and 1
		for i := range p.Values[k] {
			p.Values[k][i] += float32(k%7) * 0.01
		}
	}
	ts, err := Export(a, p, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ts["classifier.1.weight"]; ok || len(ts) != len(p.Values)-2 {
		t.Fatalf("backbone export: %d tensors (head included: %v), want %d", len(ts), ok, len(p.Values)-2)
	}
	b, err := EncodeSafetensors(ts, map[string]string{"note": "test"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "backbone.safetensors")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, gp, err := Backbone(path, 96, 64, 3, 3, 1, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != a.Name || got.InW != 96 || got.Classes != 3 {
		t.Fatalf("backbone arch %s %dx%d, %d classes", got.Name, got.InW, got.InH, got.Classes)
	}
	for k := 0; k < len(p.Values)-2; k++ {
		if !slices.Equal(gp.Values[k], p.Values[k]) {
			t.Fatalf("tensor %s differs after the round trip", p.Specs[k].Name)
		}
	}
	full, _ := Export(a, p, true)
	back, err := DecodeSafetensors(must(EncodeSafetensors(full, nil)))
	if err != nil {
		t.Fatal(err)
	}
	q, _ := nn.InitParams(a, 9)
	if _, err := Import(a, q, back, Options{Head: true}, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	for k := range p.Values {
		if !slices.Equal(q.Values[k], p.Values[k]) {
			t.Fatalf("tensor %s differs after the round trip with the head", p.Specs[k].Name)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestTorchvisionShapes: at every size, the names and shapes TorchvisionNames gives are
// exactly those of torchvision's mobilenet_v2(width_mult=W, num_classes=10).state_dict()
// (testdata/torchvision-shapes.json, written by torchvision_shapes.py with torchvision
// 0.29.2), each once, and FamilySize finds the size from them.
func TestTorchvisionShapes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "torchvision-shapes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Classes int                         `json:"classes"`
		Sizes   map[string]map[string][]int `json:"sizes"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	for _, size := range nn.FamilySizes() {
		want := ref.Sizes[size]
		a, err := nn.Family(nn.MobileNetV2, size, 224, 224, 3, ref.Classes)
		if err != nil {
			t.Fatal(err)
		}
		names, err := TorchvisionNames(a)
		if err != nil {
			t.Fatal(err)
		}
		specs, _, _ := a.Analyse()
		if len(names) != len(want) {
			t.Errorf("%s: %d names, torchvision has %d tensors", size, len(names), len(want))
		}
		ts := make(map[string]Tensor)
		for k, n := range names {
			if _, dup := ts[n]; dup {
				t.Errorf("%s: name %s twice", size, n)
			}
			shape := []int(specs[k].Shape)
			if a.Layers[specs[k].Layer].Kind == nn.Dense && len(shape) == 2 {
				shape = []int{shape[1], shape[0]}
			}
			if !slices.Equal(shape, want[n]) {
				t.Errorf("%s: %s (%s) is %v, torchvision's %v", size, n, specs[k].Name, shape, want[n])
			}
			ts[n] = Tensor{Shape: want[n]}
		}
		if got, err := FamilySize(ts); got != size {
			t.Errorf("FamilySize of torchvision's %s: %q, %v", size, got, err)
		}
	}
}

// TestImportChecks: the head keeps its initialisation unless asked; a grey network sums
// an RGB stem; a missing tensor, a wrong shape, a stray tensor and a width no size has
// are errors that name the tensor and both shapes.
func TestImportChecks(t *testing.T) {
	src, _ := nn.Family(nn.MobileNetV2, "n", 32, 32, 3, 7)
	sp, _ := nn.InitParams(src, 2)
	ts := torchTensors(t, src, sp)
	log := zap.NewNop()

	a, _ := nn.Family(nn.MobileNetV2, "n", 48, 32, 3, 4) // other input size, other classes
	p, _ := nn.InitParams(a, 3)
	head := slices.Clone(p.Values[len(p.Values)-2])
	core, logs := observer.New(zap.InfoLevel)
	if _, err := Import(a, p, ts, Options{}, zap.New(core)); err != nil {
		t.Fatal(err)
	}
	if got := logs.All(); len(got) != 1 || got[0].ContextMap()["transferred"] != "260/262" {
		t.Fatalf("transfer log %v, want 260/262 (all but the head's weight and bias)", got)
	}
	if !slices.Equal(p.Values[len(p.Values)-2], head) || !slices.Equal(p.Values[0], sp.Values[0]) || !slices.Equal(p.Values[5], sp.Values[5]) {
		t.Fatal("backbone not copied or head not kept")
	}
	if _, err := Import(a, p, ts, Options{Head: true}, log); err == nil || !strings.Contains(err.Error(), "classifier.1.weight") {
		t.Fatalf("7-class head into 4 classes: %v", err)
	}

	grey, _ := nn.Family(nn.MobileNetV2, "n", 32, 32, 1, 7)
	gp, _ := nn.InitParams(grey, 3)
	if _, err := Import(grey, gp, ts, Options{Head: true}, log); err != nil {
		t.Fatal(err)
	}
	if want := sp.Values[0][0] + sp.Values[0][9] + sp.Values[0][18]; math.Abs(float64(gp.Values[0][0]-want)) > 1e-6 {
		t.Fatalf("grey stem %v, want the sum of the colours' %v", gp.Values[0][0], want)
	}

	for _, c := range []struct {
		name string
		edit func(map[string]Tensor)
		want string
	}{
		{"missing", func(m map[string]Tensor) { delete(m, "features.5.conv.1.1.running_var") }, "features.5.conv.1.1.running_var"},
		{"shape", func(m map[string]Tensor) {
			m["features.3.conv.2.weight"] = Tensor{Shape: []int{8, 40, 1, 1}, Data: make([]float32, 8*40)}
		}, "features.3.conv.2.weight: shape [8 40 1 1] in the file, conv"},
		{"stray", func(m map[string]Tensor) { m["features.19.0.weight"] = Tensor{Shape: []int{1}, Data: []float32{1}} }, "features.19.0.weight"},
	} {
		m := make(map[string]Tensor)
		for k, v := range ts {
			m[k] = v
		}
		c.edit(m)
		_, err := Import(a, p, m, Options{}, log)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %q", c.name, err, c.want)
		}
	}

	ts["features.17.conv.2.weight"] = Tensor{Shape: []int{100, 672, 1, 1}}
	if _, err := FamilySize(ts); err == nil || !strings.Contains(err.Error(), "[100 672 1 1]") {
		t.Errorf("odd width: %v", err)
	}
	if _, err := TorchvisionNames(nn.ClassifierArch(10)); err == nil {
		t.Error("names for a non-family arch")
	}
}

// writeSafetensors encodes tensors of raw little-endian bytes as a safetensors file.
func writeSafetensors(t *testing.T, tensors map[string]any, data []byte) []byte {
	t.Helper()
	h, err := json.Marshal(tensors)
	if err != nil {
		t.Fatal(err)
	}
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(b, h...), data...)
}

// TestDecodeSafetensors: F32, F64, F16 (normal, subnormal, negative) and BF16 decode to
// float32; integer counters are skipped; a truncated file, offsets past the data, a
// size that does not fit the shape and an unknown dtype are errors.
func TestDecodeSafetensors(t *testing.T) {
	var data []byte
	data = binary.LittleEndian.AppendUint32(data, math.Float32bits(1.5))
	data = binary.LittleEndian.AppendUint32(data, math.Float32bits(-2))
	data = binary.LittleEndian.AppendUint64(data, math.Float64bits(0.25))
	data = binary.LittleEndian.AppendUint16(data, 0x3c00) // F16 1
	data = binary.LittleEndian.AppendUint16(data, 0xc200) // F16 -3
	data = binary.LittleEndian.AppendUint16(data, 0x0001) // F16 2⁻²⁴
	data = binary.LittleEndian.AppendUint16(data, 0x3fc0) // BF16 1.5
	data = binary.LittleEndian.AppendUint64(data, 7)      // I64
	good := map[string]any{
		"__metadata__": map[string]string{"format": "pt"},
		"f32":          map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{0, 8}},
		"f64":          map[string]any{"dtype": "F64", "shape": []int{1}, "data_offsets": []int{8, 16}},
		"f16":          map[string]any{"dtype": "F16", "shape": []int{1, 3}, "data_offsets": []int{16, 22}},
		"bf16":         map[string]any{"dtype": "BF16", "shape": []int{}, "data_offsets": []int{22, 24}},
		"count":        map[string]any{"dtype": "I64", "shape": []int{}, "data_offsets": []int{24, 32}},
	}
	ts, err := DecodeSafetensors(writeSafetensors(t, good, data))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]float32{"f32": {1.5, -2}, "f64": {0.25}, "f16": {1, -3, 1.0 / (1 << 24)}, "bf16": {1.5}} {
		if !slices.Equal(ts[name].Data, want) {
			t.Errorf("%s = %v, want %v", name, ts[name].Data, want)
		}
	}
	if _, ok := ts["count"]; ok || len(ts) != 4 || !slices.Equal(ts["f16"].Shape, []int{1, 3}) {
		t.Errorf("tensors %v", ts)
	}

	for name, c := range map[string]struct {
		file []byte
		want string
	}{
		"short":  {[]byte{1, 2}, "shorter"},
		"header": {binary.LittleEndian.AppendUint64(nil, 1<<40), "header of"},
		"offsets": {writeSafetensors(t, map[string]any{"x": map[string]any{"dtype": "F32", "shape": []int{4}, "data_offsets": []int{0, 16}}}, data[:8]),
			"outside"},
		"size": {writeSafetensors(t, map[string]any{"x": map[string]any{"dtype": "F32", "shape": []int{3}, "data_offsets": []int{0, 8}}}, data[:8]),
			"want 12"},
		"dtype": {writeSafetensors(t, map[string]any{"x": map[string]any{"dtype": "C64", "shape": []int{1}, "data_offsets": []int{0, 8}}}, data[:8]),
			"unsupported"},
	} {
		if _, err := DecodeSafetensors(c.file); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", name, err, c.want)
		}
	}
	if _, err := ReadSafetensors(filepath.Join(t.TempDir(), "none.safetensors")); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// onnxModel encodes a ModelProto whose graph holds the given TensorProtos.
func onnxModel(tensors ...[]byte) []byte {
	var graph []byte
	graph = protowire.AppendTag(graph, 2, protowire.BytesType) // GraphProto.name, skipped
	graph = protowire.AppendString(graph, "g")
	for _, t := range tensors {
		graph = protowire.AppendTag(graph, graphInitializer, protowire.BytesType)
		graph = protowire.AppendBytes(graph, t)
	}
	var m []byte
	m = protowire.AppendTag(m, 1, protowire.VarintType) // ir_version, skipped
	m = protowire.AppendVarint(m, 10)
	m = protowire.AppendTag(m, modelGraph, protowire.BytesType)
	return protowire.AppendBytes(m, graph)
}

// onnxTensor encodes a TensorProto: name, dims (packed), data type, then fields.
func onnxTensor(name string, dtype uint64, dims []int, fields func([]byte) []byte) []byte {
	var t, packed []byte
	for _, d := range dims {
		packed = protowire.AppendVarint(packed, uint64(d))
	}
	t = protowire.AppendTag(t, tensorDims, protowire.BytesType)
	t = protowire.AppendBytes(t, packed)
	t = protowire.AppendTag(t, tensorDataType, protowire.VarintType)
	t = protowire.AppendVarint(t, dtype)
	t = protowire.AppendTag(t, tensorName, protowire.BytesType)
	t = protowire.AppendString(t, name)
	return fields(t)
}

// TestDecodeONNX: initializers in raw_data, packed float_data, one-by-one float_data,
// F16 bits in int32_data and double_data decode to float32; integer initializers are
// skipped; external data, a size that does not fit the dims and a broken message are
// errors; a folded export (convs with biases) is refused with how to export instead.
func TestDecodeONNX(t *testing.T) {
	raw := binary.LittleEndian.AppendUint32(nil, math.Float32bits(0.5))
	raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(-1))
	var packed []byte
	for _, v := range []float32{1, 2, 3} {
		packed = protowire.AppendFixed32(packed, math.Float32bits(v))
	}
	model := onnxModel(
		onnxTensor("raw", onnxFloat, []int{2, 1}, func(b []byte) []byte {
			return protowire.AppendBytes(protowire.AppendTag(b, tensorRawData, protowire.BytesType), raw)
		}),
		onnxTensor("packed", onnxFloat, []int{3}, func(b []byte) []byte {
			return protowire.AppendBytes(protowire.AppendTag(b, tensorFloatData, protowire.BytesType), packed)
		}),
		onnxTensor("each", onnxFloat, []int{2}, func(b []byte) []byte {
			for _, v := range []float32{4, 5} {
				b = protowire.AppendFixed32(protowire.AppendTag(b, tensorFloatData, protowire.Fixed32Type), math.Float32bits(v))
			}
			return b
		}),
		onnxTensor("half", onnxFloat16, []int{1}, func(b []byte) []byte {
			return protowire.AppendVarint(protowire.AppendTag(b, tensorInt32Data, protowire.VarintType), 0xc200)
		}),
		onnxTensor("double", onnxDouble, []int{1}, func(b []byte) []byte {
			return protowire.AppendFixed64(protowire.AppendTag(b, tensorDoubleData, protowire.Fixed64Type), math.Float64bits(0.25))
		}),
		onnxTensor("shape", 7, []int{4}, func(b []byte) []byte { return b }), // INT64
	)
	ts, err := DecodeONNX(model)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]float32{"raw": {0.5, -1}, "packed": {1, 2, 3}, "each": {4, 5}, "half": {-3}, "double": {0.25}} {
		if !slices.Equal(ts[name].Data, want) {
			t.Errorf("%s = %v, want %v", name, ts[name].Data, want)
		}
	}
	if _, ok := ts["shape"]; ok || len(ts) != 5 || !slices.Equal(ts["raw"].Shape, []int{2, 1}) {
		t.Errorf("tensors %v", ts)
	}

	for name, c := range map[string]struct {
		model []byte
		want  string
	}{
		"external": {onnxModel(onnxTensor("w", onnxFloat, []int{1}, func(b []byte) []byte {
			return protowire.AppendVarint(protowire.AppendTag(b, tensorLocation, protowire.VarintType), onnxExternalStore)
		})), "initializer w: stored outside the file"},
		"size": {onnxModel(onnxTensor("w", onnxFloat, []int{3}, func(b []byte) []byte {
			return protowire.AppendBytes(protowire.AppendTag(b, tensorRawData, protowire.BytesType), raw)
		})), "8 raw bytes for dims [3], want 12"},
		"broken": {model[:len(model)-3], "onnx:"},
		"graph":  {[]byte{8, 1}, "no graph"},
	} {
		if _, err := DecodeONNX(c.model); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", name, err, c.want)
		}
	}

	a, _ := nn.Family(nn.MobileNetV2, "n", 32, 32, 3, 3)
	p, _ := nn.InitParams(a, 1)
	folded := torchTensors(t, a, p)
	folded["features.0.0.bias"] = Tensor{Shape: []int{16}, Data: make([]float32, 16)}
	if _, err := Import(a, p, folded, Options{}, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "optimize=False") {
		t.Errorf("folded export: %v", err)
	}
	if _, err := ReadFile("model.pt"); err == nil || !strings.Contains(err.Error(), ".safetensors or .onnx") {
		t.Errorf("pickle file: %v", err)
	}
}
