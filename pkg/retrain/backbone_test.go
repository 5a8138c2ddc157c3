package retrain

import (
	"context"
	"io"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// TestTrainBackboneFlag: -backbone refuses -parent beside it, a detection dataset, and
// images under the family's 32 px (MNIST's 28), each with an error saying why, before
// any data loads (MNIST's 28 px against the model setting's rule).
func TestTrainBackboneFlag(t *testing.T) {
	const file = "../nn/weights/testdata/mobilenetv2-035.safetensors"
	for _, c := range []struct {
		o    TrainOptions
		want string
	}{
		{TrainOptions{Dataset: "mnist", Backbone: file, Parent: "model.elm"}, "start from one of them"},
		{TrainOptions{Dataset: "digit-scenes", Backbone: file}, "is a classifier"},
		{TrainOptions{Dataset: "mnist", Backbone: file}, "model input width 28: want a multiple of 32"},
		{TrainOptions{Dataset: "colour-objects", Backbone: "none.safetensors"}, "none.safetensors"},
	} {
		c.o.NoAug = true
		_, err := RunTrain(context.Background(), &c.o, zap.NewNop(), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one saying %q", c.o, err, c.want)
		}
	}
}
