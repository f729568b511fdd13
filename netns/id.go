package netns

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// ErrNotNetNS says a path exists but holds no network namespace: a plain
// file (a leftover of a crashed `ip netns add`), or another kind of
// namespace.
var ErrNotNetNS = errors.New("not a network namespace")

// ID identifies a namespace: every bind mount of it and every
// /proc/PID/ns/net link into it shows the same nsfs device and inode. Two
// IDs are the same namespace when equal (==), while both live: a namespace
// made after one is gone may get its inode.
type ID struct{ Dev, Ino uint64 }

// ID checks that the path is a network namespace and returns its identity.
// Errors name the namespace and wrap fs.ErrNotExist when the path is
// missing, fs.ErrPermission when this process may not open it (another
// user's /proc entry), ErrNotNetNS when no network namespace is there.
func (n NS) ID() (ID, error) {
	h, err := n.Open()
	if err != nil {
		return ID{}, err
	}
	id := h.ID()
	return id, h.Close()
}

// SameAs reports whether n and o are one namespace now; an error if either
// is not a network namespace.
func (n NS) SameAs(o NS) (bool, error) {
	a, err := n.ID()
	if err != nil {
		return false, err
	}
	b, err := o.ID()
	if err != nil {
		return false, err
	}
	return a == b, nil
}

// Handle is an open network namespace. Its file pins the namespace: its ID
// stays this namespace's for as long as the handle is open, and its Fd is
// what netlink.LinkSetNsFd moves a link into.
type Handle struct {
	f  *os.File
	id ID
}

// Fd returns the namespace file's descriptor, valid until Close.
func (h *Handle) Fd() int { return int(h.f.Fd()) }

// ID returns the namespace's identity.
func (h *Handle) ID() ID { return h.id }

// Close closes the namespace file.
func (h *Handle) Close() error { return h.f.Close() }

// nsGetNSType is NS_GET_NSTYPE, _IO(0xb7, 3) (linux/nsfs.h), which
// golang.org/x/sys does not define, in the generic ioctl encoding of amd64
// and arm64; where the encoding differs the call fails, and check leaves
// the namespace's kind to setns.
const nsGetNSType = 0xb703

// Open opens the namespace after checking that it is one; errors as ID's.
func (n NS) Open() (*Handle, error) {
	// Statfs first, which opens nothing, so that a FIFO or device at the
	// path is refused before an open could block on it or wake it.
	var sfs unix.Statfs_t
	if err := unix.Statfs(n.path, &sfs); err != nil {
		return nil, n.errorf(err)
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return nil, n.errorf(ErrNotNetNS)
	}
	// O_NONBLOCK: the path may have been replaced since the Statfs.
	fd, err := unix.Open(n.path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, n.errorf(err)
	}
	f := os.NewFile(uintptr(fd), n.ref)
	h := &Handle{f: f}
	if err := h.check(); err != nil {
		f.Close()
		return nil, n.errorf(err)
	}
	return h, nil
}

// check makes sure the open file is a network namespace and fills in its
// ID, on the descriptor, which no rename can swap.
func (h *Handle) check() error {
	fd := int(h.f.Fd())
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return err
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return ErrNotNetNS
	}
	// Another kind of namespace (/proc/PID/ns/mnt) is nsfs too. A kernel
	// without NS_GET_NSTYPE (before 4.11) cannot tell; setns will.
	if t, err := unix.IoctlRetInt(fd, nsGetNSType); err == nil && t != unix.CLONE_NEWNET {
		return ErrNotNetNS
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	h.id = ID{Dev: st.Dev, Ino: st.Ino}
	return nil
}
