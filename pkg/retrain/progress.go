package retrain

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/edgeloop/edgeloop/pkg/train"
)

// progressBar prints a training's progress: a bar redrawn in place on a terminal, one
// plain line per epoch otherwise (logs, CI).
type progressBar struct {
	w   io.Writer
	tty bool
}

func newProgressBar(w io.Writer) *progressBar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressBar{w: w, tty: tty}
}

func (b *progressBar) update(p train.Progress) {
	if b.w == nil {
		return
	}
	if d := p.Done; d != nil {
		if b.tty {
			fmt.Fprint(b.w, "\r\033[K")
		}
		fmt.Fprintf(b.w, "epoch %d/%d  loss %.4f  val loss %.4f  val %.4f  %.0f img/s  %.1fs\n",
			d.Epoch, p.Epochs, d.TrainLoss, d.ValLoss, d.ValMetric, d.ImagesPerSec, d.Seconds)
		return
	}
	if !b.tty || p.Batches == 0 {
		return
	}
	const width = 30
	filled := width * p.Batch / p.Batches
	fmt.Fprintf(b.w, "\repoch %d/%d [%s%s] %3d%%  loss %.4f", p.Epoch, p.Epochs,
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), 100*p.Batch/p.Batches, p.Loss)
}

func (b *progressBar) finish() {
	if b.tty && b.w != nil {
		fmt.Fprint(b.w, "\r\033[K")
	}
}
