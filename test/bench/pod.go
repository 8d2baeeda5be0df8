package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/macguard-cni/macguard/pkg/identity"
	"github.com/macguard-cni/macguard/pkg/macaddr"
)

const (
	podIfName    = "eth0"
	podNamespace = "bench"
)

// runner drives chains through libcni exactly as a container runtime
// does: one CNIConfig, a result cache, CNI_ARGS with the pod's identity and
// capability arguments filtered by libcni.
type runner struct {
	env *env
	cni *libcni.CNIConfig
}

func newRunner(e *env, pluginDirs []string, probe string) *runner {
	ex := &benchExec{node: e.node, probe: probe}
	return &runner{env: e, cni: libcni.NewCNIConfigWithCacheDir(pluginDirs, e.path("cni-cache"), ex)}
}

// pod is one sandbox: its namespace and what the runtime knows about it.
type pod struct {
	ID    string // container ID
	Name  string // Kubernetes pod name
	MAC   string // MAC requested through runtimeConfig, when the chain asks for one
	Netns ns.NetNS
}

func (p *pod) runtimeConf(v *variant) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: p.ID,
		NetNS:       p.Netns.Path(),
		IfName:      podIfName,
		// What CRI runtimes send; IgnoreUnknown keeps the reference
		// plugins from rejecting the Kubernetes keys.
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", podNamespace},
			{"K8S_POD_NAME", p.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", p.ID},
		},
	}
	if v.RequestMAC {
		rt.CapabilityArgs = map[string]any{"mac": p.MAC}
	}
	return rt
}

// requestedMAC is unique per variant and pod index, so pods alive at the
// same time on one macvlan parent never ask for the same address.
func requestedMAC(variantIdx, podIdx int) string {
	return fmt.Sprintf("02:6d:67:%02x:%02x:%02x", variantIdx&0xff, (podIdx>>8)&0xff, podIdx&0xff)
}

// sample is one operation on one chain: the time libcni took for the whole
// chain and the plugin processes it ran.
type sample struct {
	Chain time.Duration
	Calls []call
}

// meta returns the call of plugin typ in the sample, if there was one.
func (s sample) meta(typ string) (call, bool) {
	for _, c := range s.Calls {
		if c.Plugin == typ {
			return c, true
		}
	}
	return call{}, false
}

func (r *runner) add(ctx context.Context, v *variant, p *pod) (sample, types.Result, error) {
	// The pass-through check compares with the main plugin's own result.
	col := &collector{keepOutput: v.Expect == expectUnchanged}
	start := time.Now()
	res, err := r.cni.AddNetworkList(withCollector(ctx, col), v.list, p.runtimeConf(v))
	s := sample{Chain: time.Since(start), Calls: col.calls}
	if err != nil {
		return s, nil, fmt.Errorf("ADD %s for pod %s: %w", v.Key, p.ID, err)
	}
	return s, res, nil
}

func (r *runner) check(ctx context.Context, v *variant, p *pod) (sample, error) {
	col := &collector{}
	start := time.Now()
	err := r.cni.CheckNetworkList(withCollector(ctx, col), v.list, p.runtimeConf(v))
	s := sample{Chain: time.Since(start), Calls: col.calls}
	if err != nil {
		return s, fmt.Errorf("CHECK %s for pod %s: %w", v.Key, p.ID, err)
	}
	return s, nil
}

func (r *runner) del(ctx context.Context, v *variant, p *pod) (sample, error) {
	col := &collector{}
	start := time.Now()
	err := r.cni.DelNetworkList(withCollector(ctx, col), v.list, p.runtimeConf(v))
	s := sample{Chain: time.Since(start), Calls: col.calls}
	if err != nil {
		return s, fmt.Errorf("DEL %s for pod %s: %w", v.Key, p.ID, err)
	}
	return s, nil
}

// verify proves the ADD did the work being timed: the result reports the
// expected MAC for the sandbox interface and the kernel agrees. s is the
// ADD's sample, for the main plugin's own result.
func (r *runner) verify(v *variant, p *pod, s sample, res types.Result) error {
	reported, err := sandboxMAC(res)
	if err != nil {
		return fmt.Errorf("%s pod %s: the ADD result: %w", v.Key, p.ID, err)
	}
	var want string
	switch v.Expect {
	case expectRequested:
		want = p.MAC
	case expectDerived:
		id, err := identity.Resolve(identity.ModeAuto, identity.Pod{Namespace: podNamespace, Name: p.Name}, p.ID)
		if err != nil {
			return fmt.Errorf("%s pod %s: resolving the identity to check: %w", v.Key, p.ID, err)
		}
		want = macaddr.Derive(macaddr.Input{Kind: id.Kind, Key: id.Key, IfName: podIfName}).String()
	case expectUnchanged:
		if want, err = mainPluginMAC(s, v.Main); err != nil {
			return fmt.Errorf("%s pod %s: %w", v.Key, p.ID, err)
		}
	}
	if want != "" && !strings.EqualFold(reported, want) {
		return fmt.Errorf("%s pod %s: the result reports MAC %s, want %s", v.Key, p.ID, reported, want)
	}
	var inKernel string
	if err := p.Netns.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(podIfName)
		if err != nil {
			return err
		}
		inKernel = l.Attrs().HardwareAddr.String()
		return nil
	}); err != nil {
		return fmt.Errorf("%s pod %s: reading %s back: %w", v.Key, p.ID, podIfName, err)
	}
	// With want checked against reported, this also pins the kernel's MAC
	// to want: for a pass-through, to what the main plugin set up.
	if !strings.EqualFold(inKernel, reported) {
		return fmt.Errorf("%s pod %s: the result reports MAC %s but %s has %s", v.Key, p.ID, reported, podIfName, inKernel)
	}
	return nil
}

// sandboxMAC is the MAC a result reports for the sandbox interface.
func sandboxMAC(res types.Result) (string, error) {
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		return "", fmt.Errorf("converting it: %w", err)
	}
	for _, i := range cur.Interfaces {
		if i.Name == podIfName && i.Sandbox != "" {
			return i.Mac, nil
		}
	}
	return "", fmt.Errorf("no sandbox interface %s in it", podIfName)
}

// mainPluginMAC is the sandbox MAC in the result the main plugin (the first
// of the chain, which created the interface) printed for this ADD: what the
// pod would have had without the chained plugin.
func mainPluginMAC(s sample, main string) (string, error) {
	for _, c := range s.Calls {
		if c.Plugin != main || c.Command != "ADD" {
			continue
		}
		if len(c.Stdout) == 0 {
			return "", fmt.Errorf("%s's ADD output was not kept", main)
		}
		res, err := create.CreateFromBytes(c.Stdout)
		if err != nil {
			return "", fmt.Errorf("parsing %s's ADD result: %w", main, err)
		}
		mac, err := sandboxMAC(res)
		if err != nil {
			return "", fmt.Errorf("%s's ADD result: %w", main, err)
		}
		return mac, nil
	}
	return "", fmt.Errorf("libcni never ran %s for ADD", main)
}

// lifecycle runs one pod through ADD, CHECK and DEL in a fresh sandbox, as
// a runtime would for a pod that starts, is checked and is deleted, and
// removes the sandbox. On failure it still tears down what it can.
func (r *runner) lifecycle(ctx context.Context, v *variant, p pod) (add, chk, del sample, err error) {
	n, err := r.env.newNetns("pod")
	if err != nil {
		return add, chk, del, err
	}
	p.Netns = n
	defer func() {
		if rerr := r.env.removeNetns(n); rerr != nil && err == nil {
			err = rerr
		}
	}()
	add, res, err := r.add(ctx, v, &p)
	if err == nil {
		err = r.verify(v, &p, add, res)
	}
	if err == nil {
		chk, err = r.check(ctx, v, &p)
	}
	var derr error
	del, derr = r.del(context.WithoutCancel(ctx), v, &p)
	return add, chk, del, errors.Join(err, derr)
}
