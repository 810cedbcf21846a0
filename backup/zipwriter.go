package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"sync"
	"unicode/utf8"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zip"
)

const (
	// compressionLevel is the deflate level. Level 5 of klauspost/compress
	// gives archives within a few percent of Info-ZIP's default level 6
	// at a fraction of the CPU time.
	compressionLevel = 5

	// maxInMemory is the largest file a worker compresses in memory.
	// Larger files are streamed by the writer, so a big file never sits
	// in memory whole.
	maxInMemory = 4 << 20

	// memoryBudget caps the bytes held by members compressed ahead of the
	// writer: their data and its compressed copy.
	memoryBudget = 8 << 20
	budgetUnit   = 64 << 10
)

// compressed is a member that a worker has read and compressed, waiting
// for its turn to be written.
type compressed struct {
	done   chan struct{}
	header *zip.FileHeader
	data   *bytes.Buffer // the member's data as stored in the zip
	raw    *bytes.Buffer // the file contents, when data is a compressed copy
	size   int64
	sha256 string
	tokens int // memory budget units held until the member is written
	err    error
}

// archiveWriter writes entries to a zip, compressing regular files on
// several goroutines and writing members in their listed order.
type archiveWriter struct {
	root     *os.Root
	zw       *zip.Writer
	budget   chan struct{}
	bufs     sync.Pool
	flates   sync.Pool
	progress func(member string, bytes int64)
	workers  int
}

func newArchiveWriter(root *os.Root, w io.Writer, progress func(string, int64)) *archiveWriter {
	aw := &archiveWriter{
		root:     root,
		zw:       zip.NewWriter(w),
		budget:   make(chan struct{}, memoryBudget/budgetUnit),
		progress: progress,
		workers:  runtime.GOMAXPROCS(0),
	}
	aw.bufs.New = func() any { return new(bytes.Buffer) }
	aw.flates.New = func() any {
		fw, _ := flate.NewWriter(io.Discard, compressionLevel)
		return fw
	}
	return aw
}

// write stores entries in order and returns their manifest members. It
// closes the zip writer on success; the caller owns the underlying file.
func (aw *archiveWriter) write(ctx context.Context, entries []entry) ([]Member, error) {
	// Workers are waited for after cancel has stopped the dispatcher.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	slots := make([]*compressed, len(entries))
	jobs := make(chan int)
	for range aw.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				aw.compress(&entries[i], slots[i])
				close(slots[i].done)
			}
		}()
	}

	for i := range entries {
		if isInMemory(&entries[i]) {
			slots[i] = &compressed{done: make(chan struct{})}
		}
	}
	go aw.dispatch(ctx, entries, slots, jobs)

	members := make([]Member, 0, len(entries))
	for i := range entries {
		m, err := aw.writeOne(ctx, &entries[i], slots[i])
		if err != nil {
			return nil, fmt.Errorf("writing %s: %w", entries[i].name, err)
		}
		members = append(members, m)
	}
	if err := aw.zw.Close(); err != nil {
		return nil, fmt.Errorf("writing the zip central directory: %w", err)
	}
	return members, nil
}

func isInMemory(e *entry) bool {
	return e.typ == TypeFile && e.size <= maxInMemory
}

// dispatch hands in-memory members to the workers in order, each after
// taking its share of the memory budget. Taking the budget in member order
// means the member the writer waits for always holds its share, and no
// share exceeds the whole budget, so the pipeline cannot deadlock.
func (aw *archiveWriter) dispatch(ctx context.Context, entries []entry, slots []*compressed, jobs chan<- int) {
	defer close(jobs)
	for i := range entries {
		if slots[i] == nil {
			continue
		}
		tokens := int(min(2*entries[i].size/budgetUnit+1, int64(cap(aw.budget))))
		for range tokens {
			select {
			case aw.budget <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		slots[i].tokens = tokens
		select {
		case jobs <- i:
		case <-ctx.Done():
			return
		}
	}
}

func (aw *archiveWriter) release(c *compressed) {
	for range c.tokens {
		<-aw.budget
	}
	if c.data != nil {
		aw.bufs.Put(c.data)
	}
	if c.raw != nil {
		aw.bufs.Put(c.raw)
	}
}

// compress reads a regular file and deflates it into memory. The member
// is stored uncompressed when deflate does not make it smaller, as zip does.
func (aw *archiveWriter) compress(e *entry, c *compressed) {
	raw := aw.bufs.Get().(*bytes.Buffer)
	raw.Reset()
	c.raw = raw
	if err := aw.readFile(e, raw); err != nil {
		c.err = err
		return
	}

	h := newHeader(e.name, e.perm, e.mtime, e.uid, e.gid)
	h.CRC32 = crc32.ChecksumIEEE(raw.Bytes())
	h.UncompressedSize64 = uint64(raw.Len())
	sum := sha256.Sum256(raw.Bytes())
	c.sha256 = hex.EncodeToString(sum[:])

	out := aw.bufs.Get().(*bytes.Buffer)
	out.Reset()
	fw := aw.flates.Get().(*flate.Writer)
	fw.Reset(out)
	_, err := fw.Write(raw.Bytes())
	if err == nil {
		err = fw.Close()
	}
	aw.flates.Put(fw)
	if err != nil {
		c.err = fmt.Errorf("compressing: %w", err)
		aw.bufs.Put(out)
		return
	}

	if out.Len() < raw.Len() {
		h.Method = zip.Deflate
		h.ReaderVersion = readerDeflate
		c.data = out
		c.raw = nil
		aw.bufs.Put(raw)
	} else {
		h.Method = zip.Store
		aw.bufs.Put(out)
		c.data, c.raw = raw, nil
	}
	h.CompressedSize64 = uint64(c.data.Len())
	c.header = h
	c.size = int64(h.UncompressedSize64)
}

func (aw *archiveWriter) readFile(e *entry, buf *bytes.Buffer) error {
	f, err := aw.root.Open(e.path)
	if err != nil {
		return fmt.Errorf("reading /%s: %w", e.path, err)
	}
	defer f.Close()
	buf.Grow(int(e.size) + bytes.MinRead)
	if _, err := buf.ReadFrom(f); err != nil {
		return fmt.Errorf("reading /%s: %w", e.path, err)
	}
	return nil
}

// writeOne writes one member. In-memory members wait for their worker;
// directories, links and large files are written here.
func (aw *archiveWriter) writeOne(ctx context.Context, e *entry, c *compressed) (Member, error) {
	m := Member{
		Name: e.name, Type: e.typ, Mode: Mode(e.perm), UID: e.uid, GID: e.gid,
		ModTime: e.mtime.UTC(), Target: e.target,
	}

	var err error
	switch {
	case c != nil:
		select {
		case <-c.done:
		case <-ctx.Done():
			return Member{}, ctx.Err()
		}
		m.Size, m.SHA256, err = aw.writeCompressed(c)
		aw.release(c)
	case e.typ == TypeFile:
		m.Size, m.SHA256, err = aw.writeStreamed(e)
	default:
		m.Size, m.SHA256, err = aw.writeStored(e)
	}
	if err != nil {
		return Member{}, err
	}
	if aw.progress != nil {
		aw.progress(e.name, m.Size)
	}
	return m, nil
}

func (aw *archiveWriter) writeCompressed(c *compressed) (int64, string, error) {
	if c.err != nil {
		return 0, "", c.err
	}
	setUTF8(c.header)
	w, err := aw.zw.CreateRaw(c.header)
	if err != nil {
		return 0, "", err
	}
	if _, err := w.Write(c.data.Bytes()); err != nil {
		return 0, "", err
	}
	return c.size, c.sha256, nil
}

// writeStored writes a directory, or a symlink whose data is its target.
func (aw *archiveWriter) writeStored(e *entry) (int64, string, error) {
	h := newHeader(e.name, e.perm|modeType(e.typ), e.mtime, e.uid, e.gid)
	h.Method = zip.Store
	data := []byte(e.target)
	h.CRC32 = crc32.ChecksumIEEE(data)
	h.CompressedSize64 = uint64(len(data))
	h.UncompressedSize64 = uint64(len(data))
	setUTF8(h)
	w, err := aw.zw.CreateRaw(h)
	if err != nil {
		return 0, "", err
	}
	if e.typ == TypeDir {
		return 0, "", nil
	}
	if _, err := w.Write(data); err != nil {
		return 0, "", err
	}
	sum := sha256.Sum256(data)
	return int64(len(data)), hex.EncodeToString(sum[:]), nil
}

// writeStreamed deflates a large file straight into the zip. The zip
// library writes the CRC and sizes in a data descriptor after the data.
func (aw *archiveWriter) writeStreamed(e *entry) (int64, string, error) {
	h := newHeader(e.name, e.perm, e.mtime, e.uid, e.gid)
	h.Method = zip.Deflate
	// CreateHeader adds its own extended timestamp field from Modified.
	h.Extra = appendUnixOwner(nil, e.uid, e.gid)
	w, err := aw.zw.CreateHeader(h)
	if err != nil {
		return 0, "", err
	}
	f, err := aw.root.Open(e.path)
	if err != nil {
		return 0, "", fmt.Errorf("reading /%s: %w", e.path, err)
	}
	defer f.Close()
	digest := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, digest), f)
	if err != nil {
		return 0, "", fmt.Errorf("reading /%s: %w", e.path, err)
	}
	return n, hex.EncodeToString(digest.Sum(nil)), nil
}

// setUTF8 sets the UTF-8 name flag for names outside ASCII, which
// CreateRaw does not do by itself.
func setUTF8(h *zip.FileHeader) {
	for i := 0; i < len(h.Name); i++ {
		if h.Name[i] >= utf8.RuneSelf {
			if utf8.ValidString(h.Name) {
				h.Flags |= 0x800
			}
			return
		}
	}
}
