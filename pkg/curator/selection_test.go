package curator

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/selection"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

func embedded(id string, frame int, emb []float32) *edgeloopv1.Example {
	ex := frameExample(id, frame, "1", kindCTT)
	ex.Embedding = emb
	return ex
}

func axis(i int) []float32 {
	v := make([]float32, 16)
	v[i] = 1
	return v
}

func near(r *rand.Rand, v []float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = x + float32(r.NormFloat64()*0.02)
	}
	return out
}

// TestDomainPoolPicksFlaggedAndDiverse: with a pool of 12 for batches of 6, the batch
// forms at the 12th candidate and holds the operator's correction and the five frames
// unlike the others, not the look-alikes; those wait, and expire after the TTL.
func TestDomainPoolPicksFlaggedAndDiverse(t *testing.T) {
	d := newDomain(t, func(p *project.Project) {
		p.Batch = project.BatchSettings{Min: 4, Max: 6, Pool: 12, Select: selection.Diverse, ColdStart: -1,
			MaxWait: config.Duration(time.Hour), TTL: config.Duration(30 * time.Minute)}
	})
	want := map[string]bool{}
	var exs []*edgeloopv1.Example
	for i := range 6 {
		exs = append(exs, embedded(fmt.Sprintf("twin-%d", i), i, axis(0)))
	}
	for i := range 5 {
		id := fmt.Sprintf("other-%d", i)
		exs = append(exs, embedded(id, 10+i, axis(1+i)))
		want[id] = true
	}
	flagged := corrected(embedded("flagged", 20, axis(0)), "7")
	exs = append(exs, flagged)
	want["flagged"] = true
	for _, ex := range exs[:11] {
		d.clk.Add(time.Second)
		d.ingest(t, ex)
	}
	if len(d.batches(t)) != 0 {
		t.Fatal("a batch formed before the pool was full")
	}
	d.ingest(t, flagged)
	bs := d.batches(t)
	if len(bs) != 1 || len(bs[0].Items) != 6 {
		t.Fatalf("pool full: %d batches; want one of 6", len(bs))
	}
	for _, it := range bs[0].Items {
		if !want[it.ExampleID] {
			t.Errorf("batch holds %s; want the flagged example and the five unlike ones", it.ExampleID)
		}
	}
	if n := len(d.pending(t)); n != 6 {
		t.Fatalf("%d candidates waiting, want the 6 not picked", n)
	}
	d.clk.Add(31 * time.Minute)
	if err := d.c.Tick(d.ctx); err != nil {
		t.Fatal(err)
	}
	if l := d.ledger(t); len(l.Pending) != 0 || l.Expired != 6 || len(d.batches(t)) != 1 {
		t.Fatalf("after the TTL: %d waiting, %d expired, %d batches; want 0, 6, 1", len(l.Pending), l.Expired, len(d.batches(t)))
	}
}

// TestDomainColdStartTypicalFirst: a new project's first batch takes frames from the
// middle of the two dense regions of the embedding space, not the outliers.
func TestDomainColdStartTypicalFirst(t *testing.T) {
	d := newDomain(t, func(p *project.Project) {
		p.Batch = project.BatchSettings{Min: 4, Max: 4, Pool: 12, Select: selection.Diverse, ColdStart: 1, MaxWait: config.Duration(time.Hour)}
	})
	r := rand.New(rand.NewPCG(1, 1))
	for i := range 10 {
		d.clk.Add(time.Second)
		d.ingest(t, embedded(fmt.Sprintf("dense%d-%d", i%2, i), i, near(r, axis(i%2))))
	}
	d.ingest(t, embedded("outlier-0", 30, axis(5)), embedded("outlier-1", 31, axis(9)))
	bs := d.batches(t)
	if len(bs) != 1 || len(bs[0].Items) != 4 {
		t.Fatalf("%d batches; want one of 4", len(bs))
	}
	regions := map[string]int{}
	for _, it := range bs[0].Items {
		regions[it.ExampleID[:6]]++
	}
	if regions["dense0"] == 0 || regions["dense1"] == 0 || regions["outlie"] != 0 {
		t.Fatalf("first batch %v: want both dense regions and no outlier", regions)
	}
}
