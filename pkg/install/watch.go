package install

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// inotifyMask: the events that mean a file in a watched directory was
// replaced (rename, as Cilium's renameio does), rewritten in place (close
// after write, as Calico does), created or deleted, or that the directory
// itself went away.
const inotifyMask = unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM |
	unix.IN_CREATE | unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// event is a change in a watched directory; name is empty when the event
// concerns the directory itself or the queue overflowed.
type event struct {
	dir, name string
	overflow  bool
}

// inotify watches directories with the kernel's inotify, read through the
// Go runtime's poller so that close unblocks a pending read.
type inotify struct {
	fd     int
	file   *os.File
	events chan event
	done   chan struct{}

	mu   sync.Mutex
	dirs map[string]int // watched directory -> watch descriptor
	wds  map[int]string // watch descriptor -> directory
}

func newInotify() (*inotify, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	// A non-blocking descriptor makes os.NewFile register it with the
	// poller. Fd() is never called on file: it would switch the
	// descriptor back to blocking mode.
	return &inotify{fd: fd, file: os.NewFile(uintptr(fd), "inotify"),
		events: make(chan event, 64), done: make(chan struct{}),
		dirs: map[string]int{}, wds: map[int]string{}}, nil
}

// add watches dir; it is a no-op for a directory already watched.
func (in *inotify) add(dir string) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if _, ok := in.dirs[dir]; ok {
		return nil
	}
	wd, err := unix.InotifyAddWatch(in.fd, dir, inotifyMask)
	if err != nil {
		return fmt.Errorf("watching %s: %w", dir, err)
	}
	in.dirs[dir] = wd
	in.wds[wd] = dir
	return nil
}

// lost forgets a directory whose watch the kernel dropped (it was deleted
// or replaced), so the next add re-creates it.
func (in *inotify) lost(dir string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	delete(in.dirs, dir)
}

// read delivers events until close.
func (in *inotify) read() {
	defer close(in.events)
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := in.file.Read(buf)
		if err != nil {
			return // closed (or broken): the resync timer still runs
		}
		in.mu.Lock()
		evs := parseEvents(buf[:n], in.wds)
		in.mu.Unlock()
		for _, e := range evs {
			select {
			case in.events <- e:
			case <-in.done:
				return
			}
		}
	}
}

// parseEvents decodes a buffer of struct inotify_event records.
func parseEvents(buf []byte, wds map[int]string) []event {
	var out []event
	for len(buf) >= unix.SizeofInotifyEvent {
		wd := int(int32(binary.NativeEndian.Uint32(buf[0:4])))
		mask := binary.NativeEndian.Uint32(buf[4:8])
		nameLen := int(binary.NativeEndian.Uint32(buf[12:16]))
		end := unix.SizeofInotifyEvent + nameLen
		if end > len(buf) {
			break
		}
		name := string(trimNUL(buf[unix.SizeofInotifyEvent:end]))
		buf = buf[end:]
		switch {
		case mask&unix.IN_Q_OVERFLOW != 0:
			out = append(out, event{overflow: true})
		case wds[wd] == "":
			// An event for a watch already removed.
		case mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0:
			out = append(out, event{dir: wds[wd]})
		default:
			out = append(out, event{dir: wds[wd], name: name})
		}
	}
	return out
}

func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

func (in *inotify) close() {
	close(in.done)
	in.file.Close()
}

// watch runs r until ctx is done: a full pass now and every Resync, and a
// pass over the concerned files shortly after any change to them.
func (r *runner) watch(ctx context.Context) error {
	in, err := newInotify()
	if err != nil {
		return err
	}
	defer in.close()
	go in.read()

	// What each watched directory entry concerns: the binary (nil) or a
	// target.
	type key struct{ dir, name string }
	interest := map[key][]*target{}
	var dirs []string
	addDir := func(d string) {
		for _, x := range dirs {
			if x == d {
				return
			}
		}
		dirs = append(dirs, d)
	}
	if r.opts.CNIBinDir != "" {
		d := filepath.Clean(r.opts.CNIBinDir)
		interest[key{d, PluginType}] = nil
		addDir(d)
	}
	for _, t := range r.targets {
		d := filepath.Dir(t.list)
		for _, n := range t.names() {
			interest[key{d, n}] = append(interest[key{d, n}], t)
		}
		addDir(d)
	}
	watchDirs := func() {
		for _, d := range dirs {
			if err := in.add(d); err != nil {
				r.log.Error("cannot watch directory; relying on the periodic resync", "dir", d, "err", err)
			}
		}
	}
	watchDirs()
	r.applyAll()

	resync := time.NewTicker(r.opts.Resync)
	defer resync.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	armRetry := func() {
		if next := r.nextRetry(); !next.IsZero() {
			retry.Reset(next.Sub(r.now()))
		}
	}
	armRetry()

	dirtyBin, dirtyAll := false, false
	dirty := map[*target]bool{}
	events := in.events
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-events:
			if !ok {
				events = nil // reader gone; resync keeps working
				r.log.Warn("file events stopped; relying on the periodic resync", "every", r.opts.Resync)
				continue
			}
			switch {
			case e.overflow:
				dirtyAll = true
			case e.name == "":
				in.lost(e.dir)
				dirtyAll = true
			default:
				ts, ok := interest[key{e.dir, e.name}]
				if !ok {
					continue
				}
				if ts == nil {
					dirtyBin = true
				}
				for _, t := range ts {
					dirty[t] = true
				}
			}
			debounce.Reset(r.opts.debounce)
		case <-debounce.C:
			if dirtyAll {
				watchDirs()
				r.applyAll()
			} else {
				if dirtyBin {
					r.applyBinary()
				}
				for _, t := range r.targets {
					if dirty[t] {
						r.applyTarget(t)
					}
				}
			}
			dirtyBin, dirtyAll = false, false
			clear(dirty)
			armRetry()
		case <-retry.C:
			r.retryHeld()
			armRetry()
		case <-resync.C:
			watchDirs()
			r.applyAll()
			armRetry()
		}
	}
}
