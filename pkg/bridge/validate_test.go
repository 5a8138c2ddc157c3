package bridge

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgeloop/edgeloop/internal/fixture"
	"github.com/edgeloop/edgeloop/pkg/contract"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// BadExamples are one example per refusal reason: the name is the reason the bridge must
// give, the function breaks a valid example. The contract tests reuse them.
func BadExamples() []struct {
	Reason string
	Break  func(ex *edgeloopv1.Example) (topic string, payload []byte)
} {
	enc := func(ex *edgeloopv1.Example) (string, []byte) {
		b, _ := proto.Marshal(ex)
		return contract.ExamplesTopic(ex.Project, ex.Device), b
	}
	return []struct {
		Reason string
		Break  func(ex *edgeloopv1.Example) (string, []byte)
	}{
		{contract.ReasonTooLarge, func(ex *edgeloopv1.Example) (string, []byte) {
			ex.AgentVersion = strings.Repeat("x", 1_100_000)
			return enc(ex)
		}},
		{contract.ReasonBadProtobuf, func(ex *edgeloopv1.Example) (string, []byte) {
			return contract.ExamplesTopic(ex.Project, ex.Device), []byte("\xff\xff\xff not a protobuf")
		}},
		{contract.ReasonTopicMismatch, func(ex *edgeloopv1.Example) (string, []byte) {
			t, b := enc(ex)
			return strings.Replace(t, "/"+ex.Device+"/", "/other-device/", 1), b
		}},
		{contract.ReasonBadID, func(ex *edgeloopv1.Example) (string, []byte) { ex.Id = "has spaces/slash"; return enc(ex) }},
		{contract.ReasonMissingField, func(ex *edgeloopv1.Example) (string, []byte) { ex.CapturedAt = nil; return enc(ex) }},
		{contract.ReasonBadImage, func(ex *edgeloopv1.Example) (string, []byte) {
			ex.Image.Data = []byte("GIF89a this is no png")
			return enc(ex)
		}},
		{contract.ReasonBadDimensions, func(ex *edgeloopv1.Example) (string, []byte) { ex.Image.Width = 640; return enc(ex) }},
		{contract.ReasonBadConfidence, func(ex *edgeloopv1.Example) (string, []byte) {
			ex.Predictions[0].Confidence = 1.5
			return enc(ex)
		}},
		{contract.ReasonBoxOutside, func(ex *edgeloopv1.Example) (string, []byte) {
			ex.Task = edgeloopv1.Task_TASK_DETECT
			ex.Predictions[0].Box = &edgeloopv1.Box{XMin: 0.5, YMin: 0.2, XMax: 1.3, YMax: 0.9}
			return enc(ex)
		}},
		{contract.ReasonNoReason, func(ex *edgeloopv1.Example) (string, []byte) { ex.Reasons = nil; return enc(ex) }},
		{contract.ReasonUnknownReason, func(ex *edgeloopv1.Example) (string, []byte) { ex.Reasons[0].Kind = 99; return enc(ex) }},
		{contract.ReasonBadTimestamp, func(ex *edgeloopv1.Example) (string, []byte) {
			ex.CapturedAt = timestamppb.New(time.Now().Add(365 * 24 * time.Hour))
			return enc(ex)
		}},
		{contract.ReasonBadLabel, func(ex *edgeloopv1.Example) (string, []byte) {
			ex.Correction = &edgeloopv1.Annotation{Labels: []*edgeloopv1.Label{{ClassName: ""}}}
			return enc(ex)
		}},
	}
}

func TestValidateExample(t *testing.T) {
	for _, ex := range []*edgeloopv1.Example{fixture.Example("p1", "d1", "e1"), fixture.DetectExample("p1", "d1", "e2")} {
		b, _ := proto.Marshal(ex)
		if _, rej := ValidateExample(contract.ExamplesTopic("p1", "d1"), b, Limits{}); rej != nil {
			t.Fatalf("valid %v example refused: %v", ex.Task, rej)
		}
	}
	for _, c := range BadExamples() {
		t.Run(c.Reason, func(t *testing.T) {
			topic, payload := c.Break(fixture.Example("p1", "d1", "e1"))
			_, rej := ValidateExample(topic, payload, Limits{})
			if rej == nil {
				t.Fatal("accepted, want refused")
			}
			if rej.Reason != c.Reason {
				t.Fatalf("reason %q (%s), want %q", rej.Reason, rej.Err.Error(), c.Reason)
			}
			if rej.Err.Error() == "" {
				t.Fatal("no detail for people")
			}
		})
	}
}

func TestValidateEdgeCases(t *testing.T) {
	cases := []struct {
		name   string
		mod    func(ex *edgeloopv1.Example)
		reason string
	}{
		{"NaN confidence", func(ex *edgeloopv1.Example) { ex.Predictions[0].Confidence = float32(math.NaN()) }, contract.ReasonBadConfidence},
		{"negative confidence", func(ex *edgeloopv1.Example) { ex.Predictions[0].Confidence = -0.01 }, contract.ReasonBadConfidence},
		{"confidence exactly 1", func(ex *edgeloopv1.Example) { ex.Predictions[0].Confidence = 1 }, ""},
		{"empty box", func(ex *edgeloopv1.Example) {
			ex.Task = edgeloopv1.Task_TASK_DETECT
			ex.Predictions[0].Box = &edgeloopv1.Box{XMin: 0.5, YMin: 0.2, XMax: 0.5, YMax: 0.9}
		}, contract.ReasonBoxOutside},
		{"detection without box", func(ex *edgeloopv1.Example) { ex.Task = edgeloopv1.Task_TASK_DETECT }, contract.ReasonBoxOutside},
		{"box on classification", func(ex *edgeloopv1.Example) {
			ex.Predictions[0].Box = &edgeloopv1.Box{XMin: 0, YMin: 0, XMax: 1, YMax: 1}
		}, contract.ReasonBadLabel},
		{"jpeg labelled png", func(ex *edgeloopv1.Example) { ex.Image.Data = fixture.JPEG(28, 28, 1) }, contract.ReasonBadImage},
		{"huge image", func(ex *edgeloopv1.Example) {
			ex.Image = &edgeloopv1.Image{Data: fixture.PNG(5000, 1), ContentType: "image/png", Width: 5000, Height: 1}
		}, contract.ReasonBadDimensions},
		{"4096x4096 black PNG of 16 KB", func(ex *edgeloopv1.Example) {
			ex.Image = &edgeloopv1.Image{Data: fixture.PNGBomb(4096, 4096), ContentType: "image/png", Width: 4096, Height: 4096}
		}, contract.ReasonBadDimensions},
		{"within the pixel budget", func(ex *edgeloopv1.Example) {
			ex.Image = &edgeloopv1.Image{Data: fixture.PNGBomb(2048, 2048), ContentType: "image/png", Width: 2048, Height: 2048}
		}, ""},
		{"id .", func(ex *edgeloopv1.Example) { ex.Id = "." }, contract.ReasonBadID},
		{"id ..", func(ex *edgeloopv1.Example) { ex.Id = ".." }, contract.ReasonBadID},
		{"id with dots is fine", func(ex *edgeloopv1.Example) { ex.Id = "cam-1.frame..2" }, ""},
		{"unknown reason kind 99", func(ex *edgeloopv1.Example) { ex.Reasons[0].Kind = 99 }, contract.ReasonUnknownReason},
		{"captured a day ahead", func(ex *edgeloopv1.Example) { ex.CapturedAt = timestamppb.New(time.Now().Add(24 * time.Hour)) }, contract.ReasonBadTimestamp},
		{"captured a minute ahead is fine", func(ex *edgeloopv1.Example) { ex.CapturedAt = timestamppb.New(time.Now().Add(time.Minute)) }, ""},
		{"invalid timestamp", func(ex *edgeloopv1.Example) { ex.CapturedAt = &timestamppb.Timestamp{Seconds: 1, Nanos: -5} }, contract.ReasonBadTimestamp},
		{"no task", func(ex *edgeloopv1.Example) { ex.Task = 0 }, contract.ReasonMissingField},
		{"unspecified reason kind", func(ex *edgeloopv1.Example) { ex.Reasons[0].Kind = 0 }, contract.ReasonNoReason},
		{"zero predictions is fine", func(ex *edgeloopv1.Example) { ex.Predictions = nil }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ex := fixture.Example("p1", "d1", "e1")
			c.mod(ex)
			b, _ := proto.Marshal(ex)
			_, rej := ValidateExample(contract.ExamplesTopic("p1", "d1"), b, Limits{})
			switch {
			case c.reason == "" && rej != nil:
				t.Fatalf("refused: %v", rej)
			case c.reason != "" && (rej == nil || rej.Reason != c.reason):
				t.Fatalf("got %v, want %s", rej, c.reason)
			}
		})
	}
}
