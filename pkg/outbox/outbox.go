// Package outbox is the edge agent's store-and-forward queue: a durable, bounded,
// prioritised queue of uploads on disk. An entry is one file, written to a temporary
// name, fsynced, renamed and its directory fsynced, so that it survives a kill -9 or a
// power cut once Put returns; a checksum finds torn or corrupt files at start-up, which
// are set aside without touching the others. When the byte budget is full the oldest
// entry of the lowest priority goes first, and every drop is counted — never silent.
// Entries leave the queue only when the caller deletes them: edgeloop's agent does once
// the bridge confirmed that Kafka has them, since a broker's PUBACK is not durable.
package outbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/edgeloop/edgeloop/pkg/atomicfile"
)

// Priorities are 0 to levels-1: higher is sent first and dropped last (edgeloop's
// agent uses contract.PriorityLow, PriorityNormal and PriorityHigh).

const (
	levels  = 3
	magic   = "ELOB"
	version = 1
	suffix  = ".ob"
)

// ErrFull says an entry was refused: the queue is full of entries that matter more.
var ErrFull = errors.New("outbox full of higher-priority entries")

// Options bound an outbox.
type Options struct {
	// MaxBytes is the disk budget (default 256 MiB, as Greengrass stream manager).
	MaxBytes int64
	// NoSync skips fsync (tests and benchmarks of the non-durable cost only).
	NoSync bool
}

// Entry is one queued upload.
type Entry struct {
	Seq      uint64
	Priority int
	ID       string
	Payload  []byte
}

type meta struct {
	seq  uint64
	id   string
	size int64
}

// Outbox is safe for concurrent use.
type Outbox struct {
	dir     string
	o       Options
	mu      sync.Mutex
	queues  [levels][]meta // each sorted by seq
	ids     map[string]uint64
	bytes   int64
	seq     uint64
	dropped uint64
	// Corrupt counts files set aside: at open, or when they no longer read back.
	corrupt int
	notify  chan struct{}
	// unread counts, by sequence number, the reads of an entry that failed in a row.
	unread map[uint64]int
}

// maxReadFailures is how many reads of an entry may fail in a row (a file the device's
// storage cannot read back) before it is set aside, so that it does not hold a sending
// slot for ever.
const maxReadFailures = 3

// Open opens (or creates) the outbox in dir and indexes what it holds.
func Open(dir string, o Options) (*Outbox, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 256 << 20
	}
	ob := &Outbox{dir: dir, o: o, ids: map[string]uint64{}, notify: make(chan struct{}, 1), unread: map[uint64]int{}}
	for p := 0; p < levels; p++ {
		if err := os.MkdirAll(ob.level(p), 0o755); err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "corrupt"), 0o755); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	for p := 0; p < levels; p++ {
		if err := ob.scan(p); err != nil {
			return nil, err
		}
	}
	if err := ob.dropReplaced(); err != nil {
		return nil, err
	}
	return ob, nil
}

// dropReplaced removes the older entries of an id queued more than once: what a
// Replace cut short leaves behind, the new entry written and the old one not yet
// removed.
func (ob *Outbox) dropReplaced() error {
	for p := range ob.queues {
		for i := 0; i < len(ob.queues[p]); {
			m := ob.queues[p][i]
			newest := ob.ids[m.id]
			if newest == m.seq {
				i++
				continue
			}
			if err := ob.remove(p, i); err != nil {
				return err
			}
			ob.ids[m.id] = newest // remove forgot the id, which the newer entry keeps
		}
	}
	return nil
}

func (ob *Outbox) level(p int) string { return filepath.Join(ob.dir, "p"+strconv.Itoa(p)) }

func (ob *Outbox) path(p int, seq uint64) string {
	return filepath.Join(ob.level(p), fmt.Sprintf("%016x%s", seq, suffix))
}

// scan indexes one priority's files, removing unfinished writes and setting corrupt
// files aside.
func (ob *Outbox) scan(p int) error {
	ents, err := os.ReadDir(ob.level(p))
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		full := filepath.Join(ob.level(p), name)
		if strings.HasSuffix(name, ".tmp") {
			_ = os.Remove(full) // atomicfile's write that never completed: Put had not returned
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, suffix), 16, 64)
		if err != nil || !strings.HasSuffix(name, suffix) {
			continue
		}
		ob.seq = max(ob.seq, seq) // never reuse a number, even a corrupt file's
		b, err := os.ReadFile(full)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		ent, err := decode(b)
		if err != nil {
			ob.corrupt++
			_ = os.Rename(full, filepath.Join(ob.dir, "corrupt", name))
			continue
		}
		ob.queues[p] = append(ob.queues[p], meta{seq: seq, id: ent.ID, size: int64(len(b))})
		if cur, ok := ob.ids[ent.ID]; !ok || seq > cur {
			ob.ids[ent.ID] = seq // the newest of an id queued twice (see dropReplaced)
		}
		ob.bytes += int64(len(b))
	}
	sort.Slice(ob.queues[p], func(i, j int) bool { return ob.queues[p][i].seq < ob.queues[p][j].seq })
	return nil
}

func encode(e Entry) []byte {
	var buf bytes.Buffer
	buf.WriteString(magic)
	buf.WriteByte(version)
	buf.WriteByte(byte(e.Priority))
	_ = binary.Write(&buf, binary.LittleEndian, uint16(len(e.ID)))
	buf.WriteString(e.ID)
	_ = binary.Write(&buf, binary.LittleEndian, uint32(len(e.Payload)))
	buf.Write(e.Payload)
	_ = binary.Write(&buf, binary.LittleEndian, crc32.ChecksumIEEE(buf.Bytes()))
	return buf.Bytes()
}

func decode(b []byte) (Entry, error) {
	if len(b) < len(magic)+2+2+4+4 || string(b[:4]) != magic || b[4] != version {
		return Entry{}, errors.New("bad header")
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return Entry{}, errors.New("checksum mismatch")
	}
	e := Entry{Priority: int(b[5])}
	n := int(binary.LittleEndian.Uint16(b[6:]))
	off := 8
	if off+n+4 > len(body) {
		return Entry{}, errors.New("truncated id")
	}
	e.ID = string(b[off : off+n])
	off += n
	pl := int(binary.LittleEndian.Uint32(b[off:]))
	off += 4
	if off+pl != len(body) {
		return Entry{}, errors.New("payload length mismatch")
	}
	e.Payload = b[off : off+pl]
	return e, nil
}

// Put stores an upload durably. An id already queued is not stored twice. To make room
// it drops the oldest entries of the lowest priority not above prio and returns their
// ids; when only more important entries are left, it refuses this one with ErrFull.
func (ob *Outbox) Put(prio int, id string, payload []byte) (dropped []string, err error) {
	return ob.put(prio, id, payload, false)
}

// Replace is Put, except that an entry with id already queued is replaced by this one
// (payload and priority): the new entry is durable before the old one goes. An entry
// being sent meanwhile may still arrive once in its old form.
func (ob *Outbox) Replace(prio int, id string, payload []byte) (dropped []string, err error) {
	return ob.put(prio, id, payload, true)
}

func (ob *Outbox) put(prio int, id string, payload []byte, replace bool) (dropped []string, err error) {
	if prio < 0 || prio >= levels {
		return nil, fmt.Errorf("outbox: priority %d outside [0,%d)", prio, levels)
	}
	if id == "" || len(id) > 1024 {
		return nil, fmt.Errorf("outbox: id must have 1–1024 bytes")
	}
	data := encode(Entry{Priority: prio, ID: id, Payload: payload})
	size := int64(len(data))
	if size > ob.o.MaxBytes {
		return nil, fmt.Errorf("outbox: entry of %d bytes exceeds the %d-byte budget", size, ob.o.MaxBytes)
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	oldSeq, queued := ob.ids[id]
	if queued && !replace {
		return nil, nil
	}
	var freed int64 // the size of the entry this one replaces
	if queued {
		p, i := ob.find(oldSeq)
		freed = ob.queues[p][i].size
	}
	for ob.bytes-freed+size > ob.o.MaxBytes {
		victim, vi := -1, 0
		for p := 0; p <= prio && victim < 0; p++ {
			for i, m := range ob.queues[p] {
				if !queued || m.seq != oldSeq {
					victim, vi = p, i
					break
				}
			}
		}
		if victim < 0 {
			ob.dropped++
			return dropped, fmt.Errorf("%w: %d bytes queued, entry %s (priority %d) refused", ErrFull, ob.bytes, id, prio)
		}
		m := ob.queues[victim][vi]
		if err := ob.remove(victim, vi); err != nil {
			return dropped, err
		}
		ob.dropped++
		dropped = append(dropped, m.id)
	}
	ob.seq++
	seq := ob.seq
	path := ob.path(prio, seq)
	if err := ob.write(path, data); err != nil {
		return dropped, err
	}
	if queued {
		p, i := ob.find(oldSeq)
		if err := ob.remove(p, i); err != nil {
			_ = os.Remove(path) // the old entry stays
			return dropped, err
		}
	}
	ob.queues[prio] = append(ob.queues[prio], meta{seq: seq, id: id, size: size})
	ob.ids[id] = seq
	ob.bytes += size
	select {
	case ob.notify <- struct{}{}:
	default:
	}
	return dropped, nil
}

// find returns the priority and index of entry seq, which is queued; the lock is held.
func (ob *Outbox) find(seq uint64) (p, i int) {
	for p := range ob.queues {
		q := ob.queues[p]
		if i := sort.Search(len(q), func(i int) bool { return q[i].seq >= seq }); i < len(q) && q[i].seq == seq {
			return p, i
		}
	}
	panic(fmt.Sprintf("outbox: entry %d is indexed but in no queue", seq))
}

// write puts data at path atomically (an entry is whole or absent), and durably unless
// the options say NoSync: the file and its directory are fsynced before Put returns.
func (ob *Outbox) write(path string, data []byte) error {
	write := atomicfile.WriteSync
	if ob.o.NoSync {
		write = atomicfile.Write
	}
	if err := write(path, data, 0o644); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// remove deletes queue p's i-th entry; the lock is held.
func (ob *Outbox) remove(p, i int) error {
	m := ob.queues[p][i]
	if err := os.Remove(ob.path(p, m.seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("outbox: %w", err)
	}
	ob.queues[p] = append(ob.queues[p][:i], ob.queues[p][i+1:]...)
	delete(ob.ids, m.id)
	delete(ob.unread, m.seq)
	ob.bytes -= m.size
	return nil
}

// Next returns up to n entries to send, most important and oldest first, skipping the
// sequence numbers in busy (those in flight).
func (ob *Outbox) Next(n int, busy map[uint64]bool) ([]Entry, error) {
	ob.mu.Lock()
	type pick struct {
		p int
		m meta
	}
	var picks []pick
	for p := levels - 1; p >= 0 && len(picks) < n; p-- {
		for _, m := range ob.queues[p] {
			if len(picks) == n {
				break
			}
			if !busy[m.seq] {
				picks = append(picks, pick{p, m})
			}
		}
	}
	ob.mu.Unlock()
	out := make([]Entry, 0, len(picks))
	var errs []error
	for _, pk := range picks {
		b, err := os.ReadFile(ob.path(pk.p, pk.m.seq))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted meanwhile (dropped or acked)
		}
		if err != nil { // it stays queued for the next calls, then is set aside; those behind it go out
			errs = append(errs, fmt.Errorf("outbox: entry %d: %w", pk.m.seq, err))
			if ob.failedRead(pk.m.seq) {
				ob.setAside(pk.p, pk.m.seq)
			}
			continue
		}
		e, err := decode(b)
		if err != nil {
			// A file that went bad on the device's storage: set aside, so that the
			// entries behind it still go out.
			ob.setAside(pk.p, pk.m.seq)
			continue
		}
		e.Seq = pk.m.seq
		out = append(out, e)
	}
	return out, errors.Join(errs...)
}

// failedRead counts a failed read of entry seq and reports whether it has failed
// maxReadFailures times in a row.
func (ob *Outbox) failedRead(seq uint64) bool {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	ob.unread[seq]++
	return ob.unread[seq] >= maxReadFailures
}

// setAside moves entry seq of queue p, which no longer reads back, to corrupt/ and
// out of the queue, counting it in Stats.Corrupt.
func (ob *Outbox) setAside(p int, seq uint64) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	delete(ob.unread, seq)
	q := ob.queues[p]
	i := sort.Search(len(q), func(i int) bool { return q[i].seq >= seq })
	if i == len(q) || q[i].seq != seq {
		return // delivered or dropped meanwhile
	}
	m := q[i]
	name := filepath.Base(ob.path(p, seq))
	_ = os.Rename(ob.path(p, seq), filepath.Join(ob.dir, "corrupt", name))
	ob.queues[p] = append(q[:i], q[i+1:]...)
	if ob.ids[m.id] == seq {
		delete(ob.ids, m.id)
	}
	ob.bytes -= m.size
	ob.corrupt++
}

// Delete removes an entry once it is delivered; deleting it twice is harmless.
func (ob *Outbox) Delete(e Entry) error {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	q := ob.queues[e.Priority]
	i := sort.Search(len(q), func(i int) bool { return q[i].seq >= e.Seq })
	if i == len(q) || q[i].seq != e.Seq {
		return nil
	}
	return ob.remove(e.Priority, i)
}

// Has reports whether the entry of sequence number seq is still queued.
func (ob *Outbox) Has(seq uint64) bool {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	for p := range ob.queues {
		q := ob.queues[p]
		i := sort.Search(len(q), func(i int) bool { return q[i].seq >= seq })
		if i < len(q) && q[i].seq == seq {
			return true
		}
	}
	return false
}

// DeleteIDs removes the entries of the given ids (a confirmation names ids, not
// sequence numbers); unknown ids are ignored. It returns how many it removed.
func (ob *Outbox) DeleteIDs(ids ...string) (int, error) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	n := 0
	for _, id := range ids {
		seq, ok := ob.ids[id]
		if !ok {
			continue
		}
		for p := range ob.queues {
			q := ob.queues[p]
			i := sort.Search(len(q), func(i int) bool { return q[i].seq >= seq })
			if i < len(q) && q[i].seq == seq {
				if err := ob.remove(p, i); err != nil {
					return n, err
				}
				n++
				break
			}
		}
	}
	return n, nil
}

// Notify is signalled after each Put.
func (ob *Outbox) Notify() <-chan struct{} { return ob.notify }

// Stats are the outbox's figures.
type Stats struct {
	Depth   int
	Bytes   int64
	Dropped uint64
	Corrupt int
	// ByPriority is the depth of each priority.
	ByPriority [levels]int
}

// Stats returns the current figures.
func (ob *Outbox) Stats() Stats {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	s := Stats{Bytes: ob.bytes, Dropped: ob.dropped, Corrupt: ob.corrupt}
	for p := range ob.queues {
		s.ByPriority[p] = len(ob.queues[p])
		s.Depth += len(ob.queues[p])
	}
	return s
}
