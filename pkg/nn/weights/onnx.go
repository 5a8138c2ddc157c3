package weights

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// ONNX's protobuf field numbers (onnx.proto) and data types that ReadONNX reads.
const (
	modelGraph        = 7  // ModelProto.graph
	graphInitializer  = 5  // GraphProto.initializer
	tensorDims        = 1  // TensorProto.dims
	tensorDataType    = 2  // TensorProto.data_type
	tensorFloatData   = 4  // TensorProto.float_data
	tensorInt32Data   = 5  // TensorProto.int32_data (F16 and BF16 bits when not raw)
	tensorName        = 8  // TensorProto.name
	tensorRawData     = 9  // TensorProto.raw_data
	tensorDoubleData  = 10 // TensorProto.double_data
	tensorLocation    = 14 // TensorProto.data_location (1: external)
	onnxFloat         = 1
	onnxFloat16       = 10
	onnxDouble        = 11
	onnxBFloat16      = 16
	onnxExternalStore = 1
)

// ReadONNX reads the floating-point initializers of the ONNX model at path, by name.
// Only names that survive the export map onto a network: torch.onnx.export(model,
// args, dynamo=True, optimize=False) keeps every state_dict tensor under its name;
// the default optimize=True and the legacy exporter fold batch norm into the convs,
// which Import reports as missing batch norm tensors. Integer initializers are
// skipped; weights stored outside the file (models over 2 GB) are an error.
func ReadONNX(path string) (map[string]Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("weights: read %s: %w", path, err)
	}
	ts, err := DecodeONNX(b)
	if err != nil {
		return nil, fmt.Errorf("weights: %s: %w", path, err)
	}
	return ts, nil
}

// DecodeONNX decodes the initializers of a serialised ONNX ModelProto.
func DecodeONNX(b []byte) (map[string]Tensor, error) {
	graph, err := fieldBytes(b, modelGraph)
	if err != nil {
		return nil, fmt.Errorf("onnx: model: %w", err)
	}
	if graph == nil {
		return nil, errors.New("onnx: no graph in the model")
	}
	ts := make(map[string]Tensor)
	for len(graph) > 0 {
		num, typ, n := protowire.ConsumeTag(graph)
		if n < 0 {
			return nil, fmt.Errorf("onnx: graph: %w", protowire.ParseError(n))
		}
		graph = graph[n:]
		if num == graphInitializer && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(graph)
			if m < 0 {
				return nil, fmt.Errorf("onnx: initializer: %w", protowire.ParseError(m))
			}
			graph = graph[m:]
			name, t, ok, err := decodeTensor(v)
			if err != nil {
				return nil, fmt.Errorf("onnx: initializer %s: %w", name, err)
			}
			if ok {
				ts[name] = t
			}
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, graph)
		if m < 0 {
			return nil, fmt.Errorf("onnx: graph field %d: %w", num, protowire.ParseError(m))
		}
		graph = graph[m:]
	}
	return ts, nil
}

// fieldBytes returns the last bytes-typed field num of message b (nil if none).
func fieldBytes(b []byte, num protowire.Number) ([]byte, error) {
	var out []byte
	for len(b) > 0 {
		f, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if f == num && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			out, b = v, b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(f, typ, b)
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		b = b[m:]
	}
	return out, nil
}

// decodeTensor decodes a TensorProto; ok is false for a non-floating-point tensor.
func decodeTensor(b []byte) (name string, t Tensor, ok bool, err error) {
	var (
		dtype  uint64
		raw    []byte
		floats []float32
		bits   []uint64 // int32_data: F16/BF16 bits
		dbls   []float64
		extern bool
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return name, t, false, protowire.ParseError(n)
		}
		b = b[n:]
		// Repeated scalars come packed (proto3) or one by one; both are read.
		scalar := func(each func(v uint64)) int {
			switch typ {
			case protowire.VarintType:
				v, m := protowire.ConsumeVarint(b)
				if m >= 0 {
					each(v)
				}
				return m
			case protowire.Fixed32Type:
				v, m := protowire.ConsumeFixed32(b)
				if m >= 0 {
					each(uint64(v))
				}
				return m
			case protowire.Fixed64Type:
				v, m := protowire.ConsumeFixed64(b)
				if m >= 0 {
					each(v)
				}
				return m
			case protowire.BytesType:
				p, m := protowire.ConsumeBytes(b)
				for len(p) > 0 && m >= 0 {
					var k int
					var v uint64
					switch num {
					case tensorFloatData:
						var w uint32
						w, k = protowire.ConsumeFixed32(p)
						v = uint64(w)
					case tensorDoubleData:
						v, k = protowire.ConsumeFixed64(p)
					default:
						v, k = protowire.ConsumeVarint(p)
					}
					if k < 0 {
						return k
					}
					each(v)
					p = p[k:]
				}
				return m
			}
			return protowire.ConsumeFieldValue(num, typ, b)
		}
		var m int
		switch num {
		case tensorDims:
			m = scalar(func(v uint64) { t.Shape = append(t.Shape, int(int64(v))) })
		case tensorDataType:
			m = scalar(func(v uint64) { dtype = v })
		case tensorFloatData:
			m = scalar(func(v uint64) { floats = append(floats, math.Float32frombits(uint32(v))) })
		case tensorInt32Data:
			m = scalar(func(v uint64) { bits = append(bits, v) })
		case tensorDoubleData:
			m = scalar(func(v uint64) { dbls = append(dbls, math.Float64frombits(v)) })
		case tensorLocation:
			m = scalar(func(v uint64) { extern = v == onnxExternalStore })
		case tensorName, tensorRawData:
			var v []byte
			v, m = protowire.ConsumeBytes(b)
			if num == tensorName {
				name = string(v)
			} else {
				raw = v
			}
		default:
			m = protowire.ConsumeFieldValue(num, typ, b)
		}
		if m < 0 {
			return name, t, false, fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
		}
		b = b[m:]
	}
	size := map[uint64]int{onnxFloat: 4, onnxFloat16: 2, onnxBFloat16: 2, onnxDouble: 8}[dtype]
	if size == 0 {
		return name, t, false, nil
	}
	if extern {
		return name, t, false, errors.New("stored outside the file (external data), which is not read")
	}
	count := 1
	for _, d := range t.Shape {
		if d < 0 {
			return name, t, false, fmt.Errorf("dims %v", t.Shape)
		}
		count *= d
	}
	t.Data = make([]float32, count)
	switch {
	case raw != nil:
		if len(raw) != count*size {
			return name, t, false, fmt.Errorf("%d raw bytes for dims %v, want %d", len(raw), t.Shape, count*size)
		}
		for i := range t.Data {
			switch dtype {
			case onnxFloat:
				t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			case onnxDouble:
				t.Data[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
			case onnxFloat16:
				t.Data[i] = halfToFloat(binary.LittleEndian.Uint16(raw[2*i:]))
			case onnxBFloat16:
				t.Data[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
			}
		}
	case dtype == onnxFloat && len(floats) == count:
		copy(t.Data, floats)
	case dtype == onnxDouble && len(dbls) == count:
		for i, v := range dbls {
			t.Data[i] = float32(v)
		}
	case (dtype == onnxFloat16 || dtype == onnxBFloat16) && len(bits) == count:
		for i, v := range bits {
			if dtype == onnxFloat16 {
				t.Data[i] = halfToFloat(uint16(v))
			} else {
				t.Data[i] = math.Float32frombits(uint32(v) << 16)
			}
		}
	default:
		return name, t, false, fmt.Errorf("%d values for dims %v (data type %d)", len(floats)+len(dbls)+len(bits), t.Shape, dtype)
	}
	return name, t, true, nil
}

// ReadFile reads a weights file by its extension: .safetensors or .onnx.
func ReadFile(path string) (map[string]Tensor, error) {
	switch {
	case strings.HasSuffix(path, ".safetensors"):
		return ReadSafetensors(path)
	case strings.HasSuffix(path, ".onnx"):
		return ReadONNX(path)
	}
	return nil, fmt.Errorf("weights: %s: want a .safetensors or .onnx file", path)
}
