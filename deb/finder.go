package deb

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"syscall"
)

// A SetFinder finds package sets as FindSet does, and remembers what it
// read of each file. A second check of the same directory, such as the
// install step's after a preflight check, reads only the files that
// changed since. A file counts as unchanged while its device, inode, size,
// modification and change times stay the same, because any write changes
// the change time. It reads the files of one call in parallel. The zero value
// is ready to use, and a SetFinder is safe for concurrent use.
type SetFinder struct {
	mu   sync.Mutex
	read map[fileKey]inspection

	// inspectFile is Inspect, replaced by tests that count the reads.
	inspectFile func(path string) (Package, error)
}

// fileKey identifies one version of a file's content.
type fileKey struct {
	path             string
	dev, ino         uint64
	size             int64
	mtimeNs, ctimeNs int64
}

// inspection is the result of Inspect for one file. Only results that
// depend on the content alone are kept: a package, or ErrNotDeb.
type inspection struct {
	pkg Package
	err error
}

// FindSet checks paths as the package's FindSet does, reusing what the
// finder read of unchanged files before.
func (f *SetFinder) FindSet(paths []string, want string) (Set, error) {
	return findSet(paths, want, f.inspectAll)
}

// inspectAll inspects every candidate, reading the files it has not seen
// before in parallel, and returns the results in the candidates' order.
func (f *SetFinder) inspectAll(candidates []candidate) []inspection {
	results := make([]inspection, len(candidates))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(candidates)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i] = f.inspect(candidates[i].path)
			}
		}()
	}
	for i := range candidates {
		work <- i
	}
	close(work)
	wg.Wait()
	return results
}

func (f *SetFinder) inspect(path string) inspection {
	key, keyed := statKey(path)
	if keyed {
		f.mu.Lock()
		r, ok := f.read[key]
		f.mu.Unlock()
		if ok {
			return r
		}
	}
	inspectFile := f.inspectFile
	if inspectFile == nil {
		inspectFile = Inspect
	}
	pkg, err := inspectFile(path)
	r := inspection{pkg, err}
	if err != nil && !errors.Is(err, ErrNotDeb) {
		// A permission or I/O error may go away, so the next call reads
		// the file again.
		return r
	}
	// The file may have changed while it was read, so the result is
	// kept only if the file still has the identity it had before.
	if after, ok := statKey(path); keyed && ok && after == key {
		f.mu.Lock()
		if f.read == nil {
			f.read = map[fileKey]inspection{}
		}
		f.read[key] = r
		f.mu.Unlock()
	}
	return r
}

// statKey returns the identity of path's current content, and false when
// it cannot tell.
func statKey(path string) (fileKey, bool) {
	info, err := os.Stat(path)
	if err != nil || !info.Mode().IsRegular() {
		return fileKey{}, false
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}, false
	}
	return fileKey{
		path: path, dev: uint64(st.Dev), ino: st.Ino, size: st.Size,
		mtimeNs: st.Mtim.Nano(), ctimeNs: st.Ctim.Nano(),
	}, true
}
