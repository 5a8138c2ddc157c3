package artifact

import (
	"strings"
	"testing"
	"time"
)

func TestManifestSignVerify(t *testing.T) {
	pub, priv, _ := GenerateKey()
	m := &ReleaseManifest{Project: "p", Version: 2, SHA256: strings.Repeat("ab", 32), SizeBytes: 10, Created: time.Now().UTC(), Seq: 4, Rollback: true, PreviousVersion: 3}
	data, sig, err := SignManifest(priv, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyManifest(pub, data, sig)
	if err != nil || got.Version != 2 || !got.Rollback || got.PreviousVersion != 3 || got.Seq != 4 {
		t.Fatalf("%+v %v", got, err)
	}
	// An artifact signature over the same bytes is not a manifest signature.
	if _, err := VerifyManifest(pub, data, Sign(priv, data)); err == nil {
		t.Fatal("an artifact signature verified as a manifest signature")
	}
	for _, bad := range []*ReleaseManifest{
		{Project: "p", Version: 1, SHA256: "../../etc/passwd", Seq: 1},
		{Project: "p", Version: 0, SHA256: strings.Repeat("ab", 32), Seq: 1},
		{Project: "", Version: 1, SHA256: strings.Repeat("ab", 32), Seq: 1},
		{Project: "p", Version: 1, SHA256: strings.Repeat("ab", 32), Seq: 0},
	} {
		if _, _, err := SignManifest(priv, bad); err == nil {
			t.Fatalf("manifest %+v signed", bad)
		}
	}
}
