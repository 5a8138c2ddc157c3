package curator

import (
	"regexp"
	"testing"
)

// TestUIEncodesIDsInPaths: every value the UI puts into a URL path (API calls and its
// own #/ routes) goes through encodeURIComponent (seg), so that an id never changes the
// path's shape. The only exceptions are the numbers and fixed words the UI makes itself.
func TestUIEncodesIDsInPaths(t *testing.T) {
	src, err := uiFiles.ReadFile("ui/app.js")
	if err != nil {
		t.Fatal(err)
	}
	own := map[string]bool{"i": true, "gi": true, "what": true} // numbers and fixed words
	for _, m := range regexp.MustCompile(`/\$\{([^}]*)\}`).FindAllSubmatch(src, -1) {
		expr := string(m[1])
		if own[expr] || regexp.MustCompile(`^seg\(.+\)$`).MatchString(expr) {
			continue
		}
		t.Errorf("app.js puts ${%s} into a path without seg(…) (encodeURIComponent)", expr)
	}
	if !regexp.MustCompile(`split\('/'\)\.filter\(Boolean\)\.map\(unseg\)`).Match(src) || !regexp.MustCompile(`const unseg = .*decodeURIComponent`).Match(src) {
		t.Error("app.js's router does not decode the path segments it reads from the hash")
	}
}
