// Package artifact is edgeloop's model file: one self-describing, versioned file with
// the network's architecture, class names, lineage and weights, identified by its
// sha256 and signed with ed25519, so that a device can refuse anything it cannot verify.
//
// Layout (little-endian):
//
//	"ELMODEL\x00"   8 bytes magic
//	format          uint32 (FormatVersion; version 1 files are read too)
//	header length   uint32
//	header          JSON (Header)
//	weights         float32 × total, tensor by tensor in Header.Params order
package artifact

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/nn"
)

// Magic starts every model file.
const Magic = "ELMODEL\x00"

// FormatVersion is the layout version this package writes. Version 2 added the
// network's spec (Header.Model) and its preprocessing (Arch.Preprocess: letterbox,
// normalisation); a build that reads only version 1 refuses a version 2 file instead of
// feeding its network wrongly prepared images.
const FormatVersion = 2

// OldestFormat is the oldest layout version this package reads. A version 1 file has
// neither spec nor preprocessing: its network takes images stretched to its input,
// pixels in [0, 1], and it is served exactly as it was.
const OldestFormat = 1

// maxHeader bounds the header so that a corrupt length cannot allocate gigabytes.
const maxHeader = 1 << 20

// ErrInvalid wraps every reason a file is refused.
var ErrInvalid = errors.New("invalid model file")

// Lineage says where a model comes from.
type Lineage struct {
	// ParentVersion and ParentSHA256 name the model it was fine-tuned from.
	ParentVersion int64  `json:"parent_version,omitempty"`
	ParentSHA256  string `json:"parent_sha256,omitempty"`
	// Dataset names the data: "mnist", "digit-scenes:drift=blur" or a dataset snapshot id.
	Dataset string `json:"dataset"`
	// Settings are the training settings, as JSON.
	Settings json.RawMessage `json:"settings,omitempty"`
	// Mirror is the project's mirror setting the model was trained under (which
	// classes a flip never mirrors and which swap): Settings' augmentation does not
	// carry it, since the training resolves it by class index.
	Mirror augment.Mirroring `json:"mirror,omitzero"`
	// Mode is how the retrain service trained it: replay, full or scratch.
	Mode string `json:"mode,omitempty"`
	// Examples is how many train examples it was trained on.
	Examples int `json:"examples,omitempty"`
	// Backbone and BackboneSHA256 name the pretrained weights file (its base name and
	// the sha256 of its bytes) a first model started from.
	Backbone       string `json:"backbone,omitempty"`
	BackboneSHA256 string `json:"backbone_sha256,omitempty"`
}

// TensorInfo names one stored tensor.
type TensorInfo struct {
	Name  string   `json:"name"`
	Shape nn.Shape `json:"shape"`
}

// Header describes a model.
type Header struct {
	Task nn.Task `json:"task"`
	Arch nn.Arch `json:"arch"`
	// Model is the spec the project chose the network by (nil: a built-in network, as in
	// every version 1 file).
	Model     *nn.Spec           `json:"model,omitempty"`
	Classes   []string           `json:"classes"`
	Project   string             `json:"project,omitempty"`
	Version   int64              `json:"version,omitempty"`
	CreatedAt time.Time          `json:"created_at"`
	Lineage   Lineage            `json:"lineage"`
	Metrics   map[string]float64 `json:"metrics,omitempty"`
	Params    []TensorInfo       `json:"params"`
	// Decode is how an agent decodes the detector's output: the project's decode
	// setting when it trained the model (nil: the agent's defaults, as for every file
	// written before the setting). A build older than the field ignores it and decodes
	// with its defaults: the boxes may differ, the network's input does not, so the
	// format stays 2.
	Decode *nn.Decoding `json:"decode,omitempty"`
}

// Model is a decoded model file.
type Model struct {
	Header Header
	Params *nn.Params
}

// Encode writes m in the file format, refusing a model that Decode would refuse for its
// class names, weights or decode setting.
func Encode(m *Model) ([]byte, error) {
	specs, _, err := m.Header.Arch.Analyse()
	if err != nil {
		return nil, err
	}
	if len(m.Header.Classes) != m.Header.Arch.Classes {
		return nil, fmt.Errorf("model: %d class names for %d classes", len(m.Header.Classes), m.Header.Arch.Classes)
	}
	if err := m.Params.CheckFinite(); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if m.Header.Decode != nil { // Decode refuses such a file as damaged: never write one
		if err := m.Header.Decode.Validate(); err != nil {
			return nil, fmt.Errorf("model header: %w", err)
		}
	}
	h := m.Header
	h.Task = h.Arch.Task
	h.Params = nil
	for _, s := range specs {
		h.Params = append(h.Params, TensorInfo{Name: s.Name, Shape: s.Shape})
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteString(Magic)
	_ = binary.Write(&buf, binary.LittleEndian, uint32(FormatVersion))
	_ = binary.Write(&buf, binary.LittleEndian, uint32(len(hj)))
	buf.Write(hj)
	w := make([]byte, 4)
	for i, s := range specs {
		if len(m.Params.Values[i]) != s.Shape.Size() {
			return nil, fmt.Errorf("model: tensor %s has %d values, want %d", s.Name, len(m.Params.Values[i]), s.Shape.Size())
		}
		for _, v := range m.Params.Values[i] {
			binary.LittleEndian.PutUint32(w, math.Float32bits(v))
			buf.Write(w)
		}
	}
	return buf.Bytes(), nil
}

// Decode reads a model file, refusing anything malformed with ErrInvalid.
func Decode(b []byte) (*Model, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if len(b) < len(Magic)+8 || string(b[:len(Magic)]) != Magic {
		return nil, bad("not an edgeloop model (bad magic)")
	}
	off := len(Magic)
	format := binary.LittleEndian.Uint32(b[off:])
	if format < OldestFormat || format > FormatVersion {
		return nil, bad("format version %d, this build reads %d to %d", format, OldestFormat, FormatVersion)
	}
	hlen := int(binary.LittleEndian.Uint32(b[off+4:]))
	off += 8
	if hlen > maxHeader || off+hlen > len(b) {
		return nil, bad("header length %d exceeds the file", hlen)
	}
	var h Header
	if err := json.Unmarshal(b[off:off+hlen], &h); err != nil {
		return nil, bad("header: %v", err)
	}
	off += hlen
	if format < 2 && (h.Model != nil || h.Arch.Preprocess != nil) {
		return nil, bad("a version %d file with a model spec or preprocessing, which version 2 introduced", format)
	}
	if h.Decode != nil {
		if err := h.Decode.Validate(); err != nil {
			return nil, bad("header: %v", err)
		}
	}
	p, err := nn.NewParams(h.Arch)
	if err != nil {
		return nil, bad("architecture: %v", err)
	}
	if len(h.Classes) != h.Arch.Classes {
		return nil, bad("%d class names for %d classes", len(h.Classes), h.Arch.Classes)
	}
	if len(h.Params) != len(p.Specs) {
		return nil, bad("%d tensors, the architecture has %d", len(h.Params), len(p.Specs))
	}
	want := 0
	for i, s := range p.Specs {
		if h.Params[i].Name != s.Name || fmt.Sprint(h.Params[i].Shape) != fmt.Sprint(s.Shape) {
			return nil, bad("tensor %d is %s%v, the architecture wants %s%v", i, h.Params[i].Name, h.Params[i].Shape, s.Name, s.Shape)
		}
		want += s.Shape.Size()
	}
	if len(b)-off != 4*want {
		return nil, bad("%d weight bytes, want %d", len(b)-off, 4*want)
	}
	for i := range p.Values {
		for j := range p.Values[i] {
			p.Values[i][j] = math.Float32frombits(binary.LittleEndian.Uint32(b[off:]))
			off += 4
		}
	}
	if err := p.CheckFinite(); err != nil {
		return nil, bad("%v", err)
	}
	return &Model{Header: h, Params: p}, nil
}

// SHA256 is the hex sha256 of data: a model's identity.
func SHA256(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}
