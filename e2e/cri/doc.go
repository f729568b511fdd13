// Package cri is the real-runtime end-to-end test: containerd (Debian's
// package) with its CRI plugin, driven by crictl as the kubelet drives it,
// starting pod sandboxes on tapswitch through the shipped conflist, then
// the node image run as the DaemonSet runs it. Root only; `make test`
// installs the tools (make cri-tools) and builds the image (make image).
package cri
