package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// entries lists dir's names, sorted.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range des {
		names = append(names, d.Name())
	}
	return names
}

func TestWriteIsComplete(t *testing.T) {
	for name, write := range map[string]func(string, []byte, os.FileMode) error{"Write": Write, "WriteSync": WriteSync} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "model.bin")
			data := bytes.Repeat([]byte("0123456789abcdef"), 1<<14) // 256 KiB
			if err := write(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, wrote %d", len(got), len(data))
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", st.Mode().Perm())
			}
			if names := entries(t, dir); !slices.Equal(names, []string{"model.bin"}) {
				t.Errorf("directory holds %q, want only model.bin", names)
			}
		})
	}
}

func TestWriteWithStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "params")
	err := WriteWith(path, 0o644, func(w io.Writer) error {
		for i := range 1000 {
			if _, err := fmt.Fprintf(w, "line %d\n", i); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if lines := strings.Count(string(got), "\n"); lines != 1000 || !strings.HasSuffix(string(got), "line 999\n") {
		t.Fatalf("file has %d lines ending %q", lines, got[max(0, len(got)-12):])
	}
}

func TestWriteReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "current")
	if err := os.WriteFile(path, []byte("a much longer old content that must not survive"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "new" {
		t.Fatalf("path holds %q, want %q", got, "new")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want the new file's 0600", st.Mode().Perm())
	}
	if names := entries(t, dir); !slices.Equal(names, []string{"current"}) {
		t.Errorf("directory holds %q, want only current", names)
	}
}

func TestFailedWriteLeavesNothing(t *testing.T) {
	errBoom := errors.New("encoder failed")
	for _, existing := range []bool{false, true} {
		t.Run(fmt.Sprintf("existing=%v", existing), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out.gob")
			if existing {
				if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := WriteWith(path, 0o644, func(w io.Writer) error {
				if _, err := w.Write([]byte("half of it")); err != nil {
					return err
				}
				return errBoom
			})
			if !errors.Is(err, errBoom) {
				t.Fatalf("error %v, want it to wrap %v", err, errBoom)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			want := []string(nil)
			if existing {
				want = []string{"out.gob"}
				if got, _ := os.ReadFile(path); string(got) != "old" {
					t.Errorf("the old file holds %q after a failed write, want %q", got, "old")
				}
			}
			if names := entries(t, dir); !slices.Equal(names, want) {
				t.Errorf("directory holds %q after a failed write, want %q", names, want)
			}
		})
	}
}

func TestPanickingWriteLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	func() {
		defer func() { _ = recover() }()
		_ = WriteWith(filepath.Join(dir, "x"), 0o644, func(w io.Writer) error {
			_, _ = w.Write([]byte("partial"))
			panic("encoder bug")
		})
	}()
	if names := entries(t, dir); len(names) != 0 {
		t.Errorf("directory holds %q after a panicking write, want nothing", names)
	}
}

func TestMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "absent")
	path := filepath.Join(dir, "f")
	err := Write(path, []byte("x"), 0o644)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error %v, want one wrapping fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "directory "+dir+" does not exist") {
		t.Errorf("error %q does not say which directory is missing", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Write created %s (stat: %v); it must create no directories", dir, err)
	}
}

func TestRenameOntoDirectoryFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "taken")
	if err := os.MkdirAll(filepath.Join(path, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteSync(path, []byte("x"), 0o644); err == nil {
		t.Fatal("replacing a non-empty directory succeeded")
	}
	if names := entries(t, dir); !slices.Equal(names, []string{"taken"}) {
		t.Errorf("directory holds %q after a failed rename, want only taken", names)
	}
}

// TestReadersNeverSeeHalf has writers replace one file with whole payloads of different
// lengths while readers read it: every read must be one of the payloads.
func TestReadersNeverSeeHalf(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shared")
	payloads := make([][]byte, 4)
	for i := range payloads {
		payloads[i] = bytes.Repeat([]byte{byte('a' + i)}, 4096*(i+1))
	}
	if err := Write(path, payloads[0], 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for i := range 2 {
		wg.Go(func() {
			for j := range 100 {
				if err := Write(path, payloads[(i+j)%len(payloads)], 0o644); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var rg sync.WaitGroup
	rg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := os.ReadFile(path)
			if err != nil {
				errs <- err
				return
			}
			if !slices.ContainsFunc(payloads, func(p []byte) bool { return bytes.Equal(p, got) }) {
				errs <- fmt.Errorf("read %d bytes that are no whole payload", len(got))
				return
			}
		}
	})
	wg.Wait()
	close(stop)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if names := entries(t, dir); !slices.Equal(names, []string{"shared"}) {
		t.Errorf("directory holds %q, want only shared", names)
	}
}
