package servertest

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// Build compiles the command at pkg (an import path) into dir and returns the binary's
// path. It builds with the test binary's own tags, so that a service a test starts as a
// process trains on the same BLAS (-tags openblas) as the test itself.
func Build(t testing.TB, dir, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-tags" && s.Value != "" {
				args = append(args, "-tags", s.Value)
			}
		}
	}
	if out, err := exec.Command("go", append(args, pkg)...).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}
