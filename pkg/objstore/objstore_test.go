package objstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/pkg/objstore"
)

// TestOnCorruptThrottle: a throttled OnCorrupt passes each key on once per period,
// and keys apart; a nil one hears nothing.
func TestOnCorruptThrottle(t *testing.T) {
	var got []string
	f := objstore.OnCorrupt(func(key string, _ error) { got = append(got, key) }).Throttle(time.Hour)
	for _, k := range []string{"a", "b", "a", "b", "a"} {
		f.Report(k, objstore.ErrCorrupt)
	}
	if strings.Join(got, ",") != "a,b" {
		t.Fatalf("passed on %v, want a,b once each", got)
	}
	objstore.OnCorrupt(nil).Throttle(0).Report("c", objstore.ErrCorrupt)
}
