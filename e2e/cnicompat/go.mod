// The CNI library containerd 1.6 vendors, in a module of its own: the main
// module can hold only one version of github.com/containernetworking/cni.
module github.com/tapswitch/tapswitch/e2e/cnicompat

go 1.26.8

require github.com/containernetworking/cni v1.1.1
