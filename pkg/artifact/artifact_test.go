package artifact

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/nn"
)

func model(t *testing.T) *Model {
	a := nn.ClassifierArch(3)
	p, err := nn.InitParams(a, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &Model{Header: Header{Arch: a, Classes: []string{"a", "b", "c"}, Project: "p", Version: 2,
		CreatedAt: time.Unix(0, 0).UTC(), Lineage: Lineage{ParentVersion: 1, Dataset: "mnist",
			Mirror: augment.Mirroring{Never: []string{"a"}, Pairs: [][2]string{{"b", "c"}}}}}, Params: p}
}

func TestRoundTrip(t *testing.T) {
	m := model(t)
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Version != 2 || got.Header.Lineage.Dataset != "mnist" || got.Header.Task != nn.Classify {
		t.Fatalf("header %+v", got.Header)
	}
	if !reflect.DeepEqual(got.Header.Lineage.Mirror, m.Header.Lineage.Mirror) {
		t.Fatalf("lineage's mirror setting %+v, want %+v", got.Header.Lineage.Mirror, m.Header.Lineage.Mirror)
	}
	for i := range m.Params.Values {
		for j, v := range m.Params.Values[i] {
			if got.Params.Values[i][j] != v {
				t.Fatalf("%s[%d] %v != %v", m.Params.Specs[i].Name, j, got.Params.Values[i][j], v)
			}
		}
	}
}

// TestRefusals: every kind of damage is refused with ErrInvalid and a reason.
func TestRefusals(t *testing.T) {
	good, _ := Encode(model(t))
	cases := map[string][]byte{
		"empty":           nil,
		"bad magic":       append([]byte("GIF89a.."), good[8:]...),
		"truncated":       good[:len(good)-5],
		"extra bytes":     append(append([]byte(nil), good...), 1, 2, 3, 4),
		"format version":  func() []byte { b := append([]byte(nil), good...); b[8] = 9; return b }(),
		"header too long": func() []byte { b := append([]byte(nil), good...); b[12], b[13], b[14] = 0xff, 0xff, 0x7f; return b }(),
	}
	for name, b := range cases {
		if _, err := Decode(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	m := model(t)
	m.Params.Values[0][0] = float32(math.NaN())
	if _, err := Encode(m); err == nil {
		t.Error("NaN weights encoded")
	}
}

func TestSignVerify(t *testing.T) {
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := Encode(model(t))
	sig := Sign(priv, data)
	if err := Verify(pub, data, SHA256(data), sig); err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), data...)
	tampered[len(tampered)-1] ^= 1
	if err := Verify(pub, tampered, "", sig); !errors.Is(err, ErrSignature) {
		t.Errorf("tampered weights: %v", err)
	}
	if err := Verify(pub, tampered, SHA256(data), sig); !errors.Is(err, ErrSignature) {
		t.Errorf("tampered weights with the old digest: %v", err)
	}
	other, _, _ := GenerateKey()
	if err := Verify(other, data, "", sig); !errors.Is(err, ErrSignature) {
		t.Errorf("wrong key: %v", err)
	}
	dir := t.TempDir()
	if err := WriteKeys(dir+"/k", dir+"/k.pub", pub, priv); err != nil {
		t.Fatal(err)
	}
	p2, err := ReadPublicKey(dir + "/k.pub")
	if err != nil || KeyID(p2) != KeyID(pub) {
		t.Fatalf("public key round trip: %v", err)
	}
	k2, err := ReadPrivateKey(dir + "/k")
	if err != nil || Verify(pub, data, "", Sign(k2, data)) != nil {
		t.Fatalf("private key round trip: %v", err)
	}
}

// TestGraphModelRoundTrip: a graph architecture (MobileNetV2) with batch norm's running
// statistics saves and loads, buffers included.
func TestGraphModelRoundTrip(t *testing.T) {
	a, err := nn.Family(nn.MobileNetV2, "n", 96, 96, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := nn.InitParams(a, 1)
	buffers := 0
	for i, s := range p.Specs {
		if s.Buffer {
			buffers++
			p.Values[i][0] = 0.25 // a trained running statistic
		}
	}
	b, err := Encode(&Model{Header: Header{Arch: a, Classes: []string{"cat", "dog"}}, Params: p})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Header.Arch, a) {
		t.Fatalf("arch read back as %+v", got.Header.Arch)
	}
	for i, s := range p.Specs {
		if s.Buffer && got.Params.Values[i][0] != 0.25 {
			t.Fatalf("buffer %s read back as %v", s.Name, got.Params.Values[i][0])
		}
	}
	if buffers != 2*52 {
		t.Fatalf("%d buffers, want 2 per batch norm (52)", buffers)
	}
}

// A detector's decoding settings travel in the header; a file without them has none
// (the agent's defaults). Encode refuses a setting out of range, naming it, and Decode
// refuses a file whose header carries one.
func TestDecodeSettingsRoundTrip(t *testing.T) {
	a := nn.DetectorArch(2)
	p, err := nn.InitParams(a, 1)
	if err != nil {
		t.Fatal(err)
	}
	d := nn.Decoding{MinScore: 0.3, IoU: 0.6, ClassAgnostic: true, MaxDetections: 100}
	for _, dec := range []*nn.Decoding{nil, &d} {
		b, err := Encode(&Model{Header: Header{Arch: a, Classes: []string{"a", "b"}, Decode: dec}, Params: p})
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Header.Decode, dec) {
			t.Fatalf("decode %+v read back as %+v", dec, got.Header.Decode)
		}
	}
	bad := &Model{Header: Header{Arch: a, Classes: []string{"a", "b"}, Decode: &nn.Decoding{MaxDetections: nn.MaxDecodedDetections + 1}}, Params: p}
	if _, err := Encode(bad); err == nil || !strings.Contains(err.Error(), "decode.max_detections") {
		t.Fatalf("encoding max_detections %d: %v, want an error naming decode.max_detections", nn.MaxDecodedDetections+1, err)
	}
	good, err := Encode(&Model{Header: Header{Arch: a, Classes: []string{"a", "b"}}, Params: p})
	if err != nil {
		t.Fatal(err)
	}
	damaged := withHeader(t, good, func(h map[string]any) {
		h["decode"] = map[string]any{"max_detections": nn.MaxDecodedDetections + 1}
	})
	if _, err := Decode(damaged); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "decode.max_detections") {
		t.Fatalf("a file with max_detections %d: %v, want ErrInvalid naming decode.max_detections", nn.MaxDecodedDetections+1, err)
	}
}

// withHeader is the model file b with its JSON header changed by edit: a file Encode
// would not write.
func withHeader(t *testing.T, b []byte, edit func(map[string]any)) []byte {
	t.Helper()
	off := len(Magic) + 8
	n := int(binary.LittleEndian.Uint32(b[len(Magic)+4:]))
	var h map[string]any
	if err := json.Unmarshal(b[off:off+n], &h); err != nil {
		t.Fatal(err)
	}
	edit(h)
	hj, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(nil), b[:off]...)
	binary.LittleEndian.PutUint32(out[len(Magic)+4:], uint32(len(hj)))
	return append(append(out, hj...), b[off+n:]...)
}
