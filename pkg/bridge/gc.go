package bridge

import (
	"os"
	"runtime/debug"
)

// bridgeGCPercent is the garbage collector's target for a process that runs only the
// bridge. Its heap is mostly the payloads in flight, garbage as soon as Kafka has them,
// so collecting at 5× the live heap instead of 2× does a fifth of the collections for a
// few tens of MB more: in bench/bridge it cut the bridge's CPU per example by ~30 %
// (docs/benchmarks.md). A memory limit (GOMEMLIMIT) still makes it collect sooner.
const bridgeGCPercent = 400

// TuneGC sets the garbage collector of a process that runs only the bridge (the bridge
// binary; not the standalone, whose other modules keep the default), unless GOGC is set
// in the environment.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(bridgeGCPercent)
	}
}
