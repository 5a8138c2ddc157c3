package outbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/pkg/contract"
)

func ids(es []Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, e.ID)
	}
	return strings.Join(s, ",")
}

func TestOrderAndDelete(t *testing.T) {
	ob, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		prio int
		id   string
	}{{contract.PriorityLow, "r1"}, {contract.PriorityNormal, "u1"}, {contract.PriorityHigh, "f1"}, {contract.PriorityLow, "r2"}, {contract.PriorityNormal, "u2"}, {contract.PriorityNormal, "u1"}} {
		if _, err := ob.Put(p.prio, p.id, []byte("payload-"+p.id)); err != nil {
			t.Fatal(err)
		}
	}
	es, err := ob.Next(10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(es); got != "f1,u1,u2,r1,r2" {
		t.Fatalf("order %s (a repeated id must be stored once)", got)
	}
	if string(es[0].Payload) != "payload-f1" {
		t.Fatalf("payload %q", es[0].Payload)
	}
	busy := map[uint64]bool{es[0].Seq: true}
	next, _ := ob.Next(2, busy)
	if ids(next) != "u1,u2" {
		t.Fatalf("busy entries not skipped: %s", ids(next))
	}
	if err := ob.Delete(es[1]); err != nil {
		t.Fatal(err)
	}
	_ = ob.Delete(es[1])
	if s := ob.Stats(); s.Depth != 4 || s.ByPriority[contract.PriorityNormal] != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestFullDropsLowestOldest: a full outbox drops the oldest of the lowest priority to
// make room, counts every drop, and refuses a low entry when only higher ones are left.
func TestFullDropsLowestOldest(t *testing.T) {
	one := int64(len(encode(Entry{ID: "x0", Payload: make([]byte, 100)})))
	ob, _ := Open(t.TempDir(), Options{MaxBytes: 3 * one})
	put := func(p int, id string) ([]string, error) { return ob.Put(p, id, make([]byte, 100)) }
	put(contract.PriorityLow, "l1")
	put(contract.PriorityLow, "l2")
	put(contract.PriorityNormal, "n1")
	dropped, err := put(contract.PriorityHigh, "h1")
	if err != nil || fmt.Sprint(dropped) != "[l1]" {
		t.Fatalf("dropped %v, %v; want [l1]", dropped, err)
	}
	dropped, _ = put(contract.PriorityNormal, "n2")
	if fmt.Sprint(dropped) != "[l2]" {
		t.Fatalf("dropped %v, want [l2]", dropped)
	}
	if _, err := put(contract.PriorityLow, "l3"); !errors.Is(err, ErrFull) {
		t.Fatalf("low entry into a queue of higher ones: %v, want ErrFull", err)
	}
	if s := ob.Stats(); s.Dropped != 3 || s.Depth != 3 {
		t.Fatalf("stats %+v: want 3 dropped (l1, l2, l3), 3 queued", s)
	}
	if _, err := ob.Put(contract.PriorityHigh, "big", make([]byte, 4*one)); err == nil {
		t.Fatal("an entry larger than the budget was accepted")
	}
}

// TestReplace: Replace swaps a queued entry's payload and priority in place of a second
// entry; an id not queued is simply put; the byte count follows; a full outbox drops
// others, never the entry being replaced; a Replace cut short between its two steps
// leaves the newer entry only, once reopened.
func TestReplace(t *testing.T) {
	dir := t.TempDir()
	ob, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ob.Put(contract.PriorityNormal, "a", []byte("v1"))
	ob.Put(contract.PriorityLow, "b", []byte("b"))
	if _, err := ob.Replace(contract.PriorityHigh, "a", []byte("v2-longer")); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Replace(contract.PriorityNormal, "c", []byte("c")); err != nil {
		t.Fatal(err)
	}
	es, _ := ob.Next(10, nil)
	if ids(es) != "a,c,b" || string(es[0].Payload) != "v2-longer" || es[0].Priority != contract.PriorityHigh {
		t.Fatalf("after replace: %s, first %q at %d; want a (v2-longer, high), c, b", ids(es), es[0].Payload, es[0].Priority)
	}
	var want int64
	for _, e := range es {
		want += int64(len(encode(e)))
	}
	if s := ob.Stats(); s.Depth != 3 || s.Bytes != want || s.ByPriority != [levels]int{1, 1, 1} {
		t.Fatalf("stats %+v, want 3 entries, %d bytes, one per priority", s, want)
	}
	if err := ob.Delete(es[0]); err != nil || ob.Stats().Depth != 2 {
		t.Fatalf("delete of the replacement: %v, depth %d", err, ob.Stats().Depth)
	}

	// Full: replacing needs room; the old entry's room counts, others go first.
	one := int64(len(encode(Entry{ID: "x", Payload: make([]byte, 100)})))
	full, _ := Open(t.TempDir(), Options{MaxBytes: 2 * one})
	full.Put(contract.PriorityLow, "x", make([]byte, 100))
	full.Put(contract.PriorityLow, "y", make([]byte, 100))
	dropped, err := full.Replace(contract.PriorityHigh, "x", make([]byte, 100))
	if err != nil || len(dropped) != 0 {
		t.Fatalf("same-size replace in a full outbox: dropped %v, %v", dropped, err)
	}
	dropped, err = full.Replace(contract.PriorityHigh, "x", make([]byte, 150))
	if err != nil || fmt.Sprint(dropped) != "[y]" {
		t.Fatalf("bigger replace: dropped %v, %v; want [y]", dropped, err)
	}
	if es, _ := full.Next(10, nil); ids(es) != "x" || len(es[0].Payload) != 150 {
		t.Fatalf("after the bigger replace: %s", ids(es))
	}

	// Cut short: the new entry written, the old one still there.
	ob.mu.Lock()
	ob.seq++
	if err := ob.write(ob.path(contract.PriorityHigh, ob.seq), encode(Entry{Priority: contract.PriorityHigh, ID: "b", Payload: []byte("b2")})); err != nil {
		t.Fatal(err)
	}
	ob.mu.Unlock()
	ob2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	es, _ = ob2.Next(10, nil)
	if ids(es) != "b,c" || string(es[0].Payload) != "b2" || ob2.Stats().Depth != 2 {
		t.Fatalf("reopened after a cut-short replace: %s (%q)", ids(es), es[0].Payload)
	}
	if n, _ := os.ReadDir(filepath.Join(dir, "p0")); len(n) != 0 {
		t.Fatalf("the replaced entry's file is left in p0: %d files", len(n))
	}
}

func TestReopenKeepsEverythingAndSetsCorruptAside(t *testing.T) {
	dir := t.TempDir()
	ob, _ := Open(dir, Options{})
	for i := 0; i < 5; i++ {
		ob.Put(i%3, fmt.Sprintf("e%d", i), []byte(fmt.Sprint(i)))
	}
	es, _ := ob.Next(10, nil)
	// Damage one entry and leave an unfinished write behind.
	victim := filepath.Join(dir, fmt.Sprintf("p%d", es[2].Priority), fmt.Sprintf("%016x.ob", es[2].Seq))
	b, _ := os.ReadFile(victim)
	b[len(b)/2] ^= 0xff
	os.WriteFile(victim, b, 0o644)
	unfinished := filepath.Join(dir, "p1", ".00000000000000ff.ob.k3x9q.tmp") // as atomicfile names it
	os.WriteFile(unfinished, []byte("half"), 0o644)

	ob2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := ob2.Stats()
	if s.Depth != 4 || s.Corrupt != 1 {
		t.Fatalf("reopened %+v: want 4 intact, 1 corrupt", s)
	}
	if _, err := os.Stat(unfinished); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the unfinished write %s survived the reopen (stat: %v)", filepath.Base(unfinished), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "corrupt", filepath.Base(victim))); err != nil {
		t.Fatalf("corrupt entry not set aside: %v", err)
	}
	es2, _ := ob2.Next(10, nil)
	want := ids(append(append([]Entry{}, es[:2]...), es[3:]...))
	if ids(es2) != want {
		t.Fatalf("after reopen %s, want %s", ids(es2), want)
	}
	// New entries continue the sequence.
	ob2.Put(contract.PriorityHigh, "new", nil)
	es3, _ := ob2.Next(10, nil)
	var maxOld uint64
	for _, e := range es {
		maxOld = max(maxOld, e.Seq)
	}
	if n := es3[1]; n.ID != "new" || n.Seq <= maxOld {
		t.Fatalf("new entry %+v after the older high-priority one, with a new sequence number", n)
	}
}

// TestEntryGoingBadWhileOpenIsSetAside: an entry whose file goes bad after Open (the
// device's storage failing) is set aside by Next, which still returns the entries
// behind it; the outbox's figures and ids forget it. One that cannot be read at all is
// set aside after a few tries.
func TestEntryGoingBadWhileOpenIsSetAside(t *testing.T) {
	dir := t.TempDir()
	ob, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := ob.Put(contract.PriorityNormal, fmt.Sprintf("e%d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	es, _ := ob.Next(10, nil)
	before := ob.Stats()
	victim := filepath.Join(dir, fmt.Sprintf("p%d", es[0].Priority), fmt.Sprintf("%016x.ob", es[0].Seq))
	if err := os.WriteFile(victim, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ob.Next(10, nil)
	if err != nil || ids(got) != "e1,e2,e3" {
		t.Fatalf("next with e0 gone bad: %s, %v; want e1,e2,e3", ids(got), err)
	}
	s := ob.Stats()
	if s.Depth != 3 || s.Corrupt != 1 || s.Bytes >= before.Bytes {
		t.Fatalf("stats %+v (before %+v): want depth 3, 1 corrupt, fewer bytes", s, before)
	}
	if _, err := os.Stat(filepath.Join(dir, "corrupt", filepath.Base(victim))); err != nil {
		t.Fatalf("the bad entry is not in corrupt/: %v", err)
	}
	if n, err := ob.DeleteIDs("e0"); err != nil || n != 0 {
		t.Fatalf("deleting the set-aside id: %d, %v", n, err)
	}
	// An entry the storage cannot read (here a folder where its file was) fails its
	// reads, with the others still returned, and is set aside after maxReadFailures.
	unreadable := filepath.Join(dir, fmt.Sprintf("p%d", es[1].Priority), fmt.Sprintf("%016x.ob", es[1].Seq))
	if err := os.Remove(unreadable); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(unreadable, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range maxReadFailures {
		got, err := ob.Next(10, nil)
		if err == nil || ids(got) != "e2,e3" {
			t.Fatalf("read %d of the unreadable e1: %s, %v; want e2,e3 and an error", i+1, ids(got), err)
		}
	}
	if got, err := ob.Next(10, nil); err != nil || ids(got) != "e2,e3" || ob.Stats().Corrupt != 2 {
		t.Fatalf("after %d failed reads: %s, %v, %+v; want e1 set aside", maxReadFailures, ids(got), err, ob.Stats())
	}
}

// TestKilledMidWrite: a child process puts entries as fast as it can and prints each id
// once Put returned; it is killed with SIGKILL. Reopened, the outbox holds every
// printed id and nothing corrupt.
func TestKilledMidWrite(t *testing.T) {
	if dir := os.Getenv("OUTBOX_CHILD_DIR"); dir != "" {
		child(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestKilledMidWrite$")
	cmd.Env = append(os.Environ(), "OUTBOX_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(20 * time.Second)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "put "); ok {
			acked[id] = true
		}
		if len(acked) == 150 || time.Now().After(deadline) {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			break
		}
	}
	_ = cmd.Wait()
	ob, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	es, err := ob.Next(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, e := range es {
		have[e.ID] = true
		if len(e.Payload) != 2000 {
			t.Fatalf("entry %s has %d payload bytes", e.ID, len(e.Payload))
		}
	}
	lost := 0
	for id := range acked {
		if !have[id] {
			lost++
		}
	}
	t.Logf("killed after %d acknowledged puts; reopened with %d entries, %d corrupt, %d lost", len(acked), len(es), ob.Stats().Corrupt, lost)
	if lost > 0 || ob.Stats().Corrupt > 0 || len(acked) < 10 {
		t.Fatalf("%d acknowledged entries lost, %d corrupt", lost, ob.Stats().Corrupt)
	}
}

func child(dir string) {
	ob, err := Open(dir, Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		id := fmt.Sprintf("ex-%d", i)
		if _, err := ob.Put(i%3, id, make([]byte, 2000)); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("put", id)
	}
}

func BenchmarkPut(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%v", sync), func(b *testing.B) {
			ob, _ := Open(b.TempDir(), Options{NoSync: !sync})
			payload := make([]byte, 50_000)
			b.SetBytes(int64(len(payload)))
			for i := 0; i < b.N; i++ {
				if _, err := ob.Put(i%3, fmt.Sprint(i), payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestDeleteIDsSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	ob, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"a", "b", "c", "d"} {
		if _, err := ob.Put(i%3, id, []byte(id)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := ob.DeleteIDs("b", "zz", "d", "b")
	if err != nil || n != 2 {
		t.Fatalf("DeleteIDs = %d, %v; want 2 removed", n, err)
	}
	ob2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	es, err := ob2.Next(10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(es); got != "c,a" {
		t.Fatalf("after reopen = %s, want c,a", got)
	}
}
