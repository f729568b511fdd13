// Package tap creates, re-opens and deletes the multi-queue TAP devices that connect
// pods (and the host gateway) to tapswitch, and moves frames through their queues.
//
// It knows TAP devices and netlink, network namespaces through package netns, and
// nothing of switching: the switch sees a device only through its queues'
// ReadBatch and WriteBatch.
//
// Every TAP is opened with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR|IFF_MULTI_QUEUE and
// TUNSETOFFLOAD, so frames carry a 10-byte virtio-net header and a pod's stack
// hands over 64 KiB TSO super-frames instead of 1514-byte frames: one read,
// one switch decision and one write per 64 KiB instead of per 1.5 KiB, which
// is most of the throughput (BENCHMARKS.md). A pod's TAP is created in the host namespace under a
// temporary name, moved into the pod namespace, renamed and configured there, and
// made persistent only once everything succeeded: until then closing its file
// descriptors is the whole rollback, because the kernel deletes a non-persistent
// TAP with its last descriptor. Persistence lets a restarted switch re-open the
// device with Attach while the pod keeps its eth0, addresses and routes.
//
// Namespace switching happens in one place, package netns (NS.Run and
// Handle.Run), on a locked OS thread.
//
// github.com/songgao/water is not used. Its Linux configuration cannot set
// IFF_VNET_HDR, and a second TUNSETIFF to add it fails with EEXIST, so a water TAP
// would lose the offloads that make this design fast; it also issues TUNSETPERSIST
// unconditionally and leaks its fd when setup fails, which would defeat the
// close-is-rollback rule above. The gateway TAP needs the same offloads, so there is
// no place left where it fits. Nor is netlink.LinkAdd(&netlink.Tuntap{...}) used to
// create TAPs: it sends the same flags for every queue, so IFF_TUN_EXCL (refuse to
// adopt an existing device of the same name) cannot be combined with multiple
// queues, and it makes the device persistent before it is configured. One small
// TUNSETIFF helper serves both creation and Attach instead; netlink does the rest.
//
// When a device disappears under an open queue (the link was deleted, or its
// namespace destroyed), the kernel detaches the queue: ReadBatch and WriteBatch
// then fail with an error wrapping syscall.EBADFD, for which IsGone reports true.
// After Close they fail with an error wrapping os.ErrClosed. One catch: a tun fd
// holds the namespace it was opened in. CreatePod opens its queues in the host
// namespace, so removing the pod's namespace destroys it and readers see EBADFD.
// Attach has to open them inside the pod's namespace, so its queues keep that
// namespace (and the TAP in it) alive after the namespace is removed; readers stay
// blocked until Device.Check reports ErrGone and the device is closed. Deleting the
// TAP first (DeletePod, as CNI DEL does) avoids the catch in both cases.
package tap
