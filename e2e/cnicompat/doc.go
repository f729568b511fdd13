// Package cnicompat checks the shipped conflist and the plugin's results
// with github.com/containernetworking/cni v1.1.1, the library containerd
// 1.6 vendors (through containerd/go-cni v1.1.6; containerd 1.7's v1.1.2
// reads the same versions). That library reads results up to spec 1.0.0,
// ignores "cniVersions" and never asks a plugin for its VERSION: a 1.1.0
// result fails the pod's start with "unsupported CNI result version".
//
// `make cnicompat` (part of `make test`) runs it; the root test drives the
// real tapswitch daemon and plugin through libcni as containerd does.
package cnicompat
