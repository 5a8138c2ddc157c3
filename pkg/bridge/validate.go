package bridge

import (
	"bytes"
	"fmt"
	"image"
	_ "image/jpeg" // decoders for image.DecodeConfig
	_ "image/png"
	"math"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/message"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// Limits bound what the bridge accepts.
type Limits struct {
	// MaxMessageBytes caps one MQTT payload (default 1,000,000: under Kafka's default
	// message.max.bytes).
	MaxMessageBytes int
	// MaxImageSide caps an image's width and height in pixels (default 4096).
	MaxImageSide int
	// MaxPixels caps an image's width × height, read from its header (default
	// DefaultMaxPixels). Agents upload at most 640 pixels a side by default; a tiny file
	// declaring millions of pixels is a decompression bomb for everything downstream.
	MaxPixels int
	// MaxClockSkew is how far ahead of the bridge's clock captured_at may be (default
	// 10 minutes): an example from the future is refused as bad_timestamp.
	MaxClockSkew time.Duration
	// Now is the bridge's clock (default time.Now).
	Now func() time.Time
}

func (l Limits) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// DefaultMaxPixels is the bridge's default pixel budget per image: 2048×2048.
const DefaultMaxPixels = 2048 * 2048

func (l Limits) withDefaults() Limits {
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = 1_000_000
	}
	if l.MaxImageSide <= 0 {
		l.MaxImageSide = 4096
	}
	if l.MaxClockSkew <= 0 {
		l.MaxClockSkew = 10 * time.Minute
	}
	if l.MaxPixels <= 0 {
		l.MaxPixels = DefaultMaxPixels
	}
	return l
}

// reject is a refusal with a stable reason and a detail for people that names what and
// where.
func reject(reason, format string, args ...any) *message.Reject {
	return &message.Reject{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// fromDevice is a device's message: it names its project and device.
type fromDevice interface {
	proto.Message
	GetProject() string
	GetDevice() string
}

// envelope checks what every device message must pass — its size, its topic, that it
// decodes into m (named name) with decode, and that it names the project and device of
// its topic.
func envelope(topic string, payload []byte, l Limits, name string, m fromDevice, decode func([]byte) error) *message.Reject {
	if len(payload) > l.MaxMessageBytes {
		return reject(contract.ReasonTooLarge, "payload of %d bytes is over the %d-byte limit", len(payload), l.MaxMessageBytes)
	}
	dt, err := contract.ParseDeviceTopic(topic)
	if err != nil {
		return reject(contract.ReasonBadTopic, "%v", err)
	}
	if err := decode(payload); err != nil {
		return reject(contract.ReasonBadProtobuf, "payload is not an edgeloop.v1.%s: %v", name, err)
	}
	if m.GetProject() != dt.Project || m.GetDevice() != dt.Device {
		return reject(contract.ReasonTopicMismatch, "payload says project %q device %q, topic says project %q device %q",
			m.GetProject(), m.GetDevice(), dt.Project, dt.Device)
	}
	return nil
}

// ValidateExample checks an example payload received on topic against the contract. The
// example's image data is not copied: it points into payload.
func ValidateExample(topic string, payload []byte, l Limits) (*edgeloopv1.Example, *message.Reject) {
	l = l.withDefaults()
	ex := &edgeloopv1.Example{}
	if rej := envelope(topic, payload, l, "Example", ex, func(b []byte) error { return decodeExample(b, ex) }); rej != nil {
		return nil, rej
	}
	if err := contract.CheckExampleID(ex.GetId()); err != nil {
		return nil, reject(contract.ReasonBadID, "%v", err)
	}
	if ex.GetCapturedAt() == nil {
		return nil, reject(contract.ReasonMissingField, "example %s: captured_at is missing", ex.GetId())
	}
	if err := ex.GetCapturedAt().CheckValid(); err != nil {
		return nil, reject(contract.ReasonBadTimestamp, "example %s: captured_at: %v", ex.GetId(), err)
	}
	if at, now := ex.GetCapturedAt().AsTime(), l.now(); at.After(now.Add(l.MaxClockSkew)) {
		return nil, reject(contract.ReasonBadTimestamp, "example %s: captured_at %s is %s ahead of the bridge's clock (%s), over the %s allowed skew",
			ex.GetId(), at.Format(time.RFC3339), at.Sub(now).Round(time.Second), now.Format(time.RFC3339), l.MaxClockSkew)
	}
	if ex.GetTask() != edgeloopv1.Task_TASK_CLASSIFY && ex.GetTask() != edgeloopv1.Task_TASK_DETECT {
		return nil, reject(contract.ReasonMissingField, "example %s: task is %v, want TASK_CLASSIFY or TASK_DETECT", ex.GetId(), ex.GetTask())
	}
	if r := checkImage(ex, l); r != nil {
		return nil, r
	}
	detect := ex.GetTask() == edgeloopv1.Task_TASK_DETECT
	for i, p := range ex.GetPredictions() {
		c := float64(p.GetConfidence())
		if math.IsNaN(c) || c < 0 || c > 1 {
			return nil, reject(contract.ReasonBadConfidence, "example %s prediction %d: confidence %v is outside [0,1]", ex.GetId(), i, p.GetConfidence())
		}
		if r := checkLabelBox(ex.GetId(), fmt.Sprintf("prediction %d", i), p.GetClassName(), p.GetBox(), detect); r != nil {
			return nil, r
		}
	}
	for i, lb := range ex.GetCorrection().GetLabels() {
		if r := checkLabelBox(ex.GetId(), fmt.Sprintf("correction label %d", i), lb.GetClassName(), lb.GetBox(), detect); r != nil {
			return nil, r
		}
	}
	if len(ex.GetReasons()) == 0 {
		return nil, reject(contract.ReasonNoReason, "example %s: no sampling reason: every upload must say why it was sampled", ex.GetId())
	}
	for i, r := range ex.GetReasons() {
		if r.GetKind() == edgeloopv1.SamplingKind_SAMPLING_KIND_UNSPECIFIED {
			return nil, reject(contract.ReasonNoReason, "example %s: sampling reason %d has no kind", ex.GetId(), i)
		}
		if _, known := edgeloopv1.SamplingKind_name[int32(r.GetKind())]; !known {
			return nil, reject(contract.ReasonUnknownReason, "example %s: sampling reason %d has kind %d, which edgeloop.v1.SamplingKind does not define", ex.GetId(), i, r.GetKind())
		}
	}
	return ex, nil
}

func checkImage(ex *edgeloopv1.Example, l Limits) *message.Reject {
	img := ex.GetImage()
	if len(img.GetData()) == 0 {
		return reject(contract.ReasonBadImage, "example %s: image data is empty", ex.GetId())
	}
	want := map[string]string{"image/jpeg": "jpeg", "image/png": "png"}[img.GetContentType()]
	if want == "" {
		return reject(contract.ReasonBadImage, "example %s: content type %q: want image/jpeg or image/png", ex.GetId(), img.GetContentType())
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(img.GetData()))
	if err != nil {
		return reject(contract.ReasonBadImage, "example %s: image header does not decode as %s: %v", ex.GetId(), want, err)
	}
	if format != want {
		return reject(contract.ReasonBadImage, "example %s: content type says %s but the data is %s", ex.GetId(), want, format)
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > l.MaxImageSide || cfg.Height > l.MaxImageSide {
		return reject(contract.ReasonBadDimensions, "example %s: image is %dx%d, want sides in [1, %d]", ex.GetId(), cfg.Width, cfg.Height, l.MaxImageSide)
	}
	if int64(cfg.Width)*int64(cfg.Height) > int64(l.MaxPixels) {
		return reject(contract.ReasonBadDimensions, "example %s: image is %dx%d (%d pixels in %d bytes), over the %d-pixel budget",
			ex.GetId(), cfg.Width, cfg.Height, cfg.Width*cfg.Height, len(img.GetData()), l.MaxPixels)
	}
	if int(img.GetWidth()) != cfg.Width || int(img.GetHeight()) != cfg.Height {
		return reject(contract.ReasonBadDimensions, "example %s: message says %dx%d but the image is %dx%d",
			ex.GetId(), img.GetWidth(), img.GetHeight(), cfg.Width, cfg.Height)
	}
	return nil
}

func checkLabelBox(id, where, class string, b *edgeloopv1.Box, detect bool) *message.Reject {
	if class == "" {
		return reject(contract.ReasonBadLabel, "example %s %s: class name is empty", id, where)
	}
	if !detect {
		if b != nil {
			return reject(contract.ReasonBadLabel, "example %s %s: a classification label has a box", id, where)
		}
		return nil
	}
	if b == nil {
		return reject(contract.ReasonBoxOutside, "example %s %s: a detection has no box", id, where)
	}
	vals := []float32{b.GetXMin(), b.GetYMin(), b.GetXMax(), b.GetYMax()}
	for _, v := range vals {
		if math.IsNaN(float64(v)) || v < 0 || v > 1 {
			return reject(contract.ReasonBoxOutside, "example %s %s: box %v is outside the image ([0,1] normalised)", id, where, vals)
		}
	}
	if b.GetXMin() >= b.GetXMax() || b.GetYMin() >= b.GetYMax() {
		return reject(contract.ReasonBoxOutside, "example %s %s: box %v is empty (want x_min < x_max, y_min < y_max)", id, where, vals)
	}
	return nil
}

// ValidateStatus checks a device status payload received on topic.
func ValidateStatus(topic string, payload []byte, l Limits) (*edgeloopv1.DeviceStatus, *message.Reject) {
	st := &edgeloopv1.DeviceStatus{}
	if rej := envelope(topic, payload, l.withDefaults(), "DeviceStatus", st, func(b []byte) error { return proto.Unmarshal(b, st) }); rej != nil {
		return nil, rej
	}
	return st, nil
}
