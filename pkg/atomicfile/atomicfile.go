// Package atomicfile writes files so that readers, and a crash, see either the old
// file or the whole new one, never half of it: the data goes into a temporary file in
// the same directory, which is then renamed over the path.
//
// The temporary file is named ".NAME.RANDOM.tmp" beside NAME. A failed write removes
// it; only a crash or a kill during the write can leave one behind, so a caller that
// lists the directory should skip (or remove at start-up) names ending in ".tmp".
//
// The package creates no directories: a missing parent directory is an error
// (wrapping fs.ErrNotExist), and callers that want one made call os.MkdirAll with the
// permissions they choose.
//
// Write and WriteWith survive a crash of the process; WriteSync also survives a power
// loss (it fsyncs the file before the rename and the directory after it).
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// Write atomically replaces path with data. A new file gets perm less the umask, as
// with os.WriteFile; a replaced file gets the same (its old mode is not kept).
func Write(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, perm, false, writeBytes(data))
}

// WriteWith atomically replaces path with what write writes, which streams into the
// temporary file (unbuffered). When write returns an error, path is left as it was,
// and the error is returned wrapped.
func WriteWith(path string, perm os.FileMode, write func(io.Writer) error) error {
	return writeFile(path, perm, false, write)
}

// WriteSync is Write made durable: when it returns nil, path holds data even after a
// power loss. It fsyncs the temporary file before the rename and the directory after
// it; if only the directory's fsync fails, path already holds data but the error is
// returned, since the rename may not be on disk.
func WriteSync(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, perm, true, writeBytes(data))
}

func writeBytes(data []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}
}

// writeFile is the package: fill writes the temporary file, durable adds the fsyncs.
func writeFile(path string, perm os.FileMode, durable bool, fill func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := createTemp(dir, filepath.Base(path), perm)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("writing %s: its directory %s does not exist: %w", path, dir, err)
		}
		return fmt.Errorf("writing %s: creating the temporary file: %w", path, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = f.Close() // may already be closed: the first close's error was reported
			_ = os.Remove(f.Name())
		}
	}()
	if err := fill(f); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if durable {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("writing %s: fsync of the temporary file: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: closing the temporary file: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	renamed = true
	if !durable {
		return nil
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("writing %s: the rename may not be durable: %w", path, err)
	}
	return nil
}

// createTemp makes a new file ".base.RANDOM.tmp" in dir. Unlike os.CreateTemp (always
// 0600) it opens the file with perm, so that the umask applies as with os.WriteFile.
func createTemp(dir, base string, perm os.FileMode) (*os.File, error) {
	for range 100 {
		name := filepath.Join(dir, "."+base+"."+strconv.FormatUint(uint64(rand.Uint32()), 36)+".tmp")
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("no free temporary name for %s in %s after 100 tries", base, dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening the directory to fsync it: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync of directory %s: %w", dir, err)
	}
	return nil
}
