package retrain

import (
	"context"
	"flag"
	"io"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// TestTrainBackboneFlag: -backbone refuses -parent beside it, a file of another width
// than -model's (naming the first tensor that does not fit), and
// images under the family's 32 px (MNIST's 28), each with an error saying why, before
// any data loads (MNIST's 28 px against the model setting's rule).
func TestTrainBackboneFlag(t *testing.T) {
	const file = "../nn/weights/testdata/mobilenetv2-035.safetensors"
	for _, c := range []struct {
		o    TrainOptions
		want string
	}{
		{TrainOptions{Dataset: "mnist", Backbone: file, Parent: "model.elm"}, "start from one of them"},
		{TrainOptions{Dataset: "colour-objects", Backbone: file, Model: nn.Spec{Size: "s"}}, "features.2.conv.2.weight: shape [8 48 1 1] in the file"},
		{TrainOptions{Dataset: "mnist", Backbone: file}, "model input width 28: want a multiple of 32"},
		{TrainOptions{Dataset: "colour-objects", Backbone: "none.safetensors"}, "none.safetensors"},
		{TrainOptions{Dataset: "colour-objects", Backbone: file, Model: nn.Spec{Pyramid: "p6"}}, `model pyramid "p6" unknown`},
	} {
		c.o.NoAug = true
		_, err := RunTrain(context.Background(), &c.o, zap.NewNop(), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one saying %q", c.o, err, c.want)
		}
	}
}

// TestTrainPyramidFlag: -pyramid reaches the model setting `retrain train` builds from.
func TestTrainPyramidFlag(t *testing.T) {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	o := RegisterTrainFlags(fs)
	if err := fs.Parse([]string{"-model", "mobilenetv2:s", "-pyramid", "p2"}); err != nil {
		t.Fatal(err)
	}
	spec := o.Model
	spec.Defaults(nn.Detect)
	a, err := spec.Build(nn.Detect, 3)
	if err != nil || a.Name != "mobilenetv2-s-det-p2" || len(a.Levels) != 4 {
		t.Fatalf("-pyramid p2: %s, %v", a.Name, err)
	}
}
