package daemon

import (
	"errors"
	"io/fs"
	"os"

	"go.uber.org/zap"

	"github.com/tapswitch/tapswitch/cmd/internal/state"
	"github.com/tapswitch/tapswitch/internal/crashpoint"
)

// Crash consistency of pod add and delete (the CNI plugin's ADD and DEL
// are these on the daemon's side): each writes an intent record to the
// state directory, synced, before its first change on the host, and
// removes it after its last change is in the state file. A daemon killed
// in between leaves the record, and the next start settles it
// (finishIntentsLocked): an add not in the state file is undone, a delete
// is finished. The crashpoint names mark the steps a test kills at.

// beginAdd records the add of p before anything is made. Whether the
// namespace exists now decides what an undo deletes.
func (d *Daemon) beginAdd(p *pod) error {
	path, _ := netnsPathOf(p.rec.Netns)
	_, err := os.Stat(path)
	existed := !errors.Is(err, fs.ErrNotExist)
	if err := d.store.Begin(state.Intent{Op: state.IntentAdd, Pod: p.rec, NetnsExisted: existed}); err != nil {
		return err
	}
	crashpoint.Hit("add-begun")
	return nil
}

// beginDel records the delete of p before anything is removed.
func (d *Daemon) beginDel(p *pod) error {
	if err := d.store.Begin(state.Intent{Op: state.IntentDel, Pod: p.rec}); err != nil {
		return err
	}
	crashpoint.Hit("del-begun")
	return nil
}

// endOp removes the intent of pod: the operation is complete, or undone.
// A record that cannot be removed is settled again at the next start,
// which finds the operation complete.
func (d *Daemon) endOp(pod string) {
	if err := d.store.Done(pod); err != nil {
		d.log.Warn("intent record not removed; the next start settles it", zap.String("pod", pod), zap.Error(err))
	}
}
