//go:build edgeloop_cuda

package cudaengine

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	gblas "gonum.org/v1/gonum/blas"
	"gorgonia.org/cu"
	cublas "gorgonia.org/cu/blas"
	"gorgonia.org/cu/nvrtc"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// Device is one GPU with its context, compiled kernels and cuBLAS handle. A CUDA
// context is current on one OS thread, so every call runs on the device's own locked
// goroutine; engines built from one Device share it and take turns.
type Device struct {
	// Name, Memory (bytes) and Capability (major, minor) describe the GPU.
	Name       string
	Memory     int64
	Capability [2]int

	work      chan func()
	quit      chan struct{} // closed by Close
	done      chan struct{} // closed when the device's goroutine has released everything
	closeOnce sync.Once
	mod       cu.Module
	fns       map[string]cu.Function
	blas      *cublas.Standard
}

var _ device = (*Device)(nil)

// kernels every engine launches.
var kernelNames = []string{"im2col", "col2im", "bias_nchw", "nchw_to_cnhw", "row_sum", "col_sum", "add_bias_rows",
	"relu_fwd", "relu_bwd", "maxpool_fwd", "maxpool_bwd", "softmax_xent", "detect_loss", "msdet_loss", "adam",
	"gconv_fwd", "gconv_dx", "gconv_dw", "channel_sum", "bn_stats", "bn_running", "bn_fwd", "bn_bwd_reduce", "bn_bwd_dx",
	"relu6_fwd", "relu6_bwd", "silu_fwd", "silu_bwd", "copy", "add2", "add_into", "concat_fwd", "concat_bwd",
	"gap_fwd", "gap_bwd", "up2_fwd", "up2_bwd", "maxpool_k_fwd", "maxpool_k_bwd"}

// Open creates a context on GPU ordinal, compiles the kernels for it with NVRTC and
// creates a cuBLAS handle. Close releases them.
func Open(ordinal int) (*Device, error) {
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: counting devices: %w", err)
	}
	if ordinal < 0 || ordinal >= n {
		return nil, fmt.Errorf("cuda: device %d requested, %d present", ordinal, n)
	}
	d := &Device{work: make(chan func()), quit: make(chan struct{}), done: make(chan struct{}), fns: map[string]cu.Function{}}
	ready := make(chan error)
	go d.loop(ordinal, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return d, nil
}

// loop owns the OS thread the context is current on.
func (d *Device) loop(ordinal int, ready chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(d.done)
	ctx, err := d.init(ordinal)
	ready <- err
	if err != nil {
		return
	}
	for running := true; running; {
		select {
		case f := <-d.work:
			f()
		case <-d.quit:
			running = false
		}
	}
	if d.blas != nil {
		_ = d.blas.Close()
	}
	_ = d.mod.Unload()
	_ = ctx.Destroy()
}

func (d *Device) init(ordinal int) (*cu.CUContext, error) {
	dev, err := cu.GetDevice(ordinal)
	if err != nil {
		return nil, fmt.Errorf("cuda: device %d: %w", ordinal, err)
	}
	if d.Name, err = dev.Name(); err != nil {
		return nil, fmt.Errorf("cuda: device %d name: %w", ordinal, err)
	}
	d.Name = strings.TrimSpace(d.Name)
	if d.Memory, err = dev.TotalMem(); err != nil {
		return nil, fmt.Errorf("cuda: device %d memory: %w", ordinal, err)
	}
	for i, a := range []cu.DeviceAttribute{cu.ComputeCapabilityMajor, cu.ComputeCapabilityMinor} {
		if d.Capability[i], err = dev.Attribute(a); err != nil {
			return nil, fmt.Errorf("cuda: device %d compute capability: %w", ordinal, err)
		}
	}
	ctx, err := dev.MakeContext(cu.SchedAuto)
	if err != nil {
		return nil, fmt.Errorf("cuda: context on %s: %w", d.Name, err)
	}
	fail := func(err error) (*cu.CUContext, error) {
		_ = ctx.Destroy()
		return nil, err
	}
	ptx, err := compile(kernelSource, d.Capability)
	if err != nil {
		return fail(err)
	}
	if d.mod, err = cu.LoadData(ptx); err != nil {
		return fail(fmt.Errorf("cuda: loading the kernels' PTX: %w", err))
	}
	for _, name := range kernelNames {
		f, err := d.mod.Function(name)
		if err != nil {
			return fail(fmt.Errorf("cuda: kernel %s: %w", name, err))
		}
		d.fns[name] = f
	}
	if d.blas, err = newBLAS(); err != nil {
		return fail(err)
	}
	return &ctx, nil
}

// newBLAS creates the cuBLAS handle; cu/blas reports a failed cublasCreate by panicking.
func newBLAS() (b *cublas.Standard, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cuda: creating the cuBLAS handle: %v", r)
		}
	}()
	return cublas.New(), nil
}

// compile turns CUDA C into PTX for the device's architecture with NVRTC. Fused
// multiply-add is off so that the element-wise kernels round like the CPU engine.
func compile(src string, cc [2]int) (string, error) {
	p, err := nvrtc.CreateProgram(src, "edgeloop_kernels.cu")
	if err != nil {
		return "", fmt.Errorf("nvrtc: %w", err)
	}
	defer func() { _ = p.Destroy() }()
	if err := p.Compile(fmt.Sprintf("--gpu-architecture=compute_%d%d", cc[0], cc[1]), "--fmad=false"); err != nil {
		log, _ := p.GetLog()
		return "", fmt.Errorf("nvrtc: compiling the kernels for compute_%d%d: %w\n%s", cc[0], cc[1], err, log)
	}
	return p.GetPTX()
}

// Do runs f on the device's thread and waits for it.
func (d *Device) Do(f func() error) error {
	errc := make(chan error, 1)
	select {
	case d.work <- func() { errc <- f() }:
	case <-d.done:
		return errors.New("cuda: device closed")
	}
	return <-errc
}

// Close releases the context, the kernels and the cuBLAS handle; later calls on the
// device or its engines fail with an error. Engines built from the device should be
// closed first.
func (d *Device) Close() error {
	d.closeOnce.Do(func() { close(d.quit) })
	<-d.done
	return nil
}

// String describes the device, e.g. "NVIDIA H200, 139 GiB, sm_90".
func (d *Device) String() string {
	return fmt.Sprintf("%s, %d GiB, sm_%d%d", d.Name, d.Memory>>30, d.Capability[0], d.Capability[1])
}

// alloc and the other methods below run on the device's thread (inside Do).
func (d *Device) alloc(n int) (buf, error) {
	p, err := cu.MemAlloc(int64(max(n, 1)) * 4)
	if err != nil {
		return buf{}, fmt.Errorf("cuda: allocating %d floats: %w", n, err)
	}
	return buf{p: uintptr(p), n: n}, nil
}

func (d *Device) free(b buf) {
	if b.p != 0 {
		_ = cu.MemFree(cu.DevicePtr(b.p))
	}
}

func (d *Device) upload(b buf, host []float32) error {
	if len(host) > b.n {
		return fmt.Errorf("cuda: upload of %d floats into %d", len(host), b.n)
	}
	if len(host) == 0 {
		return nil
	}
	return cu.MemcpyHtoD(cu.DevicePtr(b.p), unsafe.Pointer(&host[0]), int64(len(host))*4)
}

func (d *Device) uploadInts(b buf, host []int32) error {
	if len(host) > b.n {
		return fmt.Errorf("cuda: upload of %d ints into %d", len(host), b.n)
	}
	if len(host) == 0 {
		return nil
	}
	return cu.MemcpyHtoD(cu.DevicePtr(b.p), unsafe.Pointer(&host[0]), int64(len(host))*4)
}

func (d *Device) download(host []float32, b buf) error {
	if len(host) > b.n {
		return fmt.Errorf("cuda: download of %d floats from %d", len(host), b.n)
	}
	if len(host) == 0 {
		return nil
	}
	return cu.MemcpyDtoH(unsafe.Pointer(&host[0]), cu.DevicePtr(b.p), int64(len(host))*4)
}

func (d *Device) zero(b buf) error { return cu.MemsetD32(cu.DevicePtr(b.p), 0, int64(max(b.n, 1))) }

// launch runs kernel name over n elements (grid-stride, 256 threads a block). Each
// argument is a buf, an int, an int64 or a float32.
func (d *Device) launch(name string, n int, args ...any) error {
	blocks := min(max(1, (n+255)/256), 1<<20)
	return d.launchGrid(name, blocks, args...)
}

// launchGrid runs kernel name on blocks blocks of 256 threads.
func (d *Device) launchGrid(name string, blocks int, args ...any) error {
	f, ok := d.fns[name]
	if !ok {
		return fmt.Errorf("cuda: no kernel %s", name)
	}
	// Each argument travels as one 8-byte slot; the kernel reads its own width.
	slots := make([]uint64, len(args))
	params := make([]unsafe.Pointer, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case buf:
			slots[i] = uint64(v.p)
		case int:
			slots[i] = uint64(uint32(int32(v)))
		case int64:
			slots[i] = uint64(v)
		case float32:
			slots[i] = uint64(math.Float32bits(v))
		default:
			return fmt.Errorf("cuda: kernel %s argument %d of type %T", name, i, a)
		}
		params[i] = unsafe.Pointer(&slots[i])
	}
	if err := f.Launch(blocks, 1, 1, 256, 1, 1, 0, cu.NoStream, params); err != nil {
		return fmt.Errorf("cuda: launching %s: %w", name, err)
	}
	return nil
}

// view is a float32 slice over device memory, the form cu/blas takes its operands in.
// It must never be read or written from Go.
func view(b buf) []float32 {
	p := b.p
	return unsafe.Slice(*(**float32)(unsafe.Pointer(&p)), max(b.n, 1))
}

// gemm computes C = alpha·op(A)·op(B) + beta·C for row-major operands with cuBLAS (see
// colMajorGemm for the mapping).
func (d *Device) gemm(tA, tB bool, m, n, k int, alpha float32, a, b buf, beta float32, c buf) error {
	if a.n < m*k || b.n < k*n || c.n < m*n {
		return fmt.Errorf("cuda: gemm %dx%dx%d on buffers of %d, %d, %d", m, n, k, a.n, b.n, c.n)
	}
	g := colMajorGemm(tA, tB, m, n, k)
	op := func(t bool) gblas.Transpose {
		if t {
			return gblas.Trans
		}
		return gblas.NoTrans
	}
	// The first operand of the column-major call is B, the second A.
	d.blas.Sgemm(op(g.transFirst), op(g.transSecond), g.m, g.n, g.k, alpha, view(b), g.ldFirst, view(a), g.ldSecond, beta, view(c), g.ldc)
	if err := d.blas.Err(); err != nil {
		return fmt.Errorf("cuda: cuBLAS sgemm %dx%dx%d: %w", m, n, k, err)
	}
	return nil
}

// readLoss copies the double at the start of b (at least 2 elements) to the host.
func (d *Device) readLoss(b buf) (float64, error) {
	var v float64
	if err := cu.MemcpyDtoH(unsafe.Pointer(&v), cu.DevicePtr(b.p), 8); err != nil {
		return 0, fmt.Errorf("cuda: reading the loss: %w", err)
	}
	return v, nil
}

// Factory returns an engine factory on d for the training code and the predictor.
func (d *Device) Factory(cfg nn.EngineConfig) (nn.Engine, error) { return New(d, cfg) }
