package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ipam"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
)

// cmdDel removes the attachment's port and TAP and releases its address.
// Whatever is already gone (the pod, its namespace, an address) is not an
// error, so the runtime may call it again; the daemon down is "try again
// later", since its port would otherwise outlive the released address.
func cmdDel(args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	cl, ctx, st, cancel, err := connect(c)
	if err != nil {
		return err
	}
	defer cancel()
	if err := removePort(ctx, cl, args.ContainerID, args.IfName); err != nil {
		return err
	}
	return c.ipamRun(st, ipam.ExecDel)
}

// removePort deletes the daemon's pod for (containerID, ifName), if there
// is one and it is really that attachment.
func removePort(ctx context.Context, cl *api.Client, containerID, ifName string) error {
	name := podName(containerID, ifName)
	pod, err := cl.Pod(ctx, name)
	switch {
	case errors.Is(err, api.ErrNotFound):
		return nil
	case err != nil:
		return daemonErr(err)
	case pod.ContainerID != containerID || pod.IfName != ifName:
		fmt.Fprintf(os.Stderr, "tapswitch-cni: pod %q belongs to container %s ifname %s; not deleting it\n", name, pod.ContainerID, pod.IfName)
		return nil
	}
	if err := cl.DeletePod(ctx, name); err != nil && !errors.Is(err, api.ErrNotFound) {
		return daemonErr(err)
	}
	return nil
}

// cmdGC removes this network's attachments that are not in the runtime's
// cni.dev/valid-attachments, releasing each one's addresses with an IPAM
// DEL for its container (host-local v1.9.1 has no GC of its own), and this
// network's gone pods (their namespace vanished) whatever the list says,
// keeping the addresses of those the runtime still lists for their DEL;
// then it hands GC on to the IPAM plugin for plugins that have one.
func cmdGC(args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	cl, ctx, st, cancel, err := connect(c)
	if err != nil {
		return err
	}
	defer cancel()
	pods, err := cl.Pods(ctx)
	if err != nil {
		return daemonErr(err)
	}
	valid := make(map[types.GCAttachment]bool, len(c.ValidAttachments))
	for _, a := range c.ValidAttachments {
		valid[a] = true
	}
	ic, err := c.ipamConf(st, "cni.dev/valid-attachments")
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pods {
		if p.ContainerID == "" || p.Network != c.Name {
			continue
		}
		listed := valid[types.GCAttachment{ContainerID: p.ContainerID, IfName: p.IfName}]
		if listed && p.State != api.PodGone {
			continue
		}
		if err := cl.DeletePod(ctx, p.Name); err != nil && !errors.Is(err, api.ErrNotFound) {
			errs = append(errs, fmt.Errorf("pod %q: %w", p.Name, err))
			continue
		}
		if listed {
			continue // the runtime's DEL releases the addresses
		}
		// The IPAM plugin reads the attachment from the environment.
		os.Setenv("CNI_CONTAINERID", p.ContainerID)
		os.Setenv("CNI_IFNAME", p.IfName)
		os.Setenv("CNI_NETNS", "")
		if err := ipam.ExecDel(c.IPAM.Type, ic); err != nil {
			errs = append(errs, fmt.Errorf("pod %q: ipam %s: %w", p.Name, c.IPAM.Type, err))
		}
	}
	os.Unsetenv("CNI_CONTAINERID")
	os.Unsetenv("CNI_IFNAME")
	gc, err := c.ipamConf(st)
	if err == nil {
		err = invoke.DelegateGC(ctx, c.IPAM.Type, gc, nil)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("ipam %s: GC: %w", c.IPAM.Type, err))
	}
	return errors.Join(errs...)
}

// cmdStatus fails with "plugin not available" (50) while the daemon does
// not answer or the IPAM plugin is missing from CNI_PATH: the runtime then
// sends no ADD.
func cmdStatus(args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	if _, err := api.NewClient(c.Socket).Status(ctx); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "tapswitch daemon not reachable", err.Error())
	}
	if _, err := invoke.FindInPath(c.IPAM.Type, filepath.SplitList(args.Path)); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("ipam plugin %s not found", c.IPAM.Type), err.Error())
	}
	return nil
}
