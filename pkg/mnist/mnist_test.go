package mnist

import "testing"

func TestLoad(t *testing.T) {
	train, test, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 60000 || test.Len() != 10000 {
		t.Fatalf("sizes %d/%d, want 60000/10000", train.Len(), test.Len())
	}
	var counts [10]int
	for _, l := range train.Labels {
		counts[l]++
	}
	for d, c := range counts {
		if c < 5000 || c > 7000 {
			t.Errorf("digit %d has %d training images", d, c)
		}
	}
	ink := 0
	for _, p := range train.Images[0] {
		if p > 128 {
			ink++
		}
	}
	if ink < 50 || ink > 400 {
		t.Errorf("first image has %d ink pixels: not a digit?", ink)
	}
}

func TestFindDirBadDir(t *testing.T) {
	if _, err := FindDir(t.TempDir()); err == nil {
		t.Fatal("an empty dir was accepted")
	}
}
