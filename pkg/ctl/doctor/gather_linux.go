package doctor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"golang.org/x/sys/unix"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/macguard-cni/macguard/pkg/ctl/cniconf"
	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/pathpolicy"
	"github.com/macguard-cni/macguard/pkg/state"
)

// Options says where to look. The defaults are what a node and the
// DaemonSet's pod (with the doctor component) use.
type Options struct {
	Dirs Dirs
	// Required are directories that must exist (those given explicitly on
	// the command line, and the conf dir, bin dir and proc): a missing one
	// means the doctor could not look.
	Required map[string]bool
	// Confs are files to check with --conf.
	Confs []string
	Node  string
}

// DefaultDirs are the node's standard locations.
var DefaultDirs = Dirs{
	Conf:  "/etc/cni/net.d",
	Bin:   "/opt/cni/bin",
	Data:  "/run/cni/macguard",
	Cache: libcni.CacheDir,
	// Multus' default cniDir; its delegates' results are there.
	MultusCache: "/var/lib/cni/multus",
	Netns:       "/var/run/netns",
	Proc:        "/proc",
}

// versionTimeout bounds `macguard version`: a plugin that hangs must not
// hang the doctor.
const versionTimeout = 5 * time.Second

// Gather reads the node into a World. It changes nothing. An error means
// the doctor could not look (exit code 2).
func Gather(opts Options, self Build) (*World, error) {
	roots := pathpolicy.Node()
	w := &World{Node: opts.Node, Dirs: opts.Dirs, Self: self, Netns: []Netns{}, Cache: []CacheEntry{}, Records: []Record{}, Confs: []ConfFile{}, Roots: &roots}
	d := opts.Dirs
	flags := map[string]string{d.Conf: "--conf-dir", d.Bin: "--bin-dir", d.Data: "--data-dir", d.Cache: "--cache-dir",
		d.Netns: "--netns-dir", d.Proc: "--proc", d.MultusCache: "--multus-cache-dir"}
	for _, dir := range []string{d.Conf, d.Bin, d.Data, d.Cache, d.Netns, d.Proc, d.MultusCache} {
		if dir == d.MultusCache && !opts.Required[dir] {
			// Only nodes with Multus have it: not worth a finding.
			continue
		}
		fi, err := os.Stat(dir)
		switch {
		case err == nil && !fi.IsDir():
			return nil, fmt.Errorf("%s is not a directory", dir)
		case errors.Is(err, fs.ErrNotExist) && !opts.Required[dir]:
			w.Missing = append(w.Missing, dir)
		case errors.Is(err, fs.ErrNotExist):
			return nil, missingDir(dir, flags[dir])
		case err != nil:
			return nil, err
		}
	}
	if err := gatherNetns(w); err != nil {
		return nil, err
	}
	gatherCache(w, d.Cache)
	if d.MultusCache != "" {
		gatherCache(w, d.MultusCache)
	}
	gatherRouting(w)
	if err := gatherRecords(w); err != nil {
		return nil, err
	}
	if err := gatherConfs(w, opts.Confs); err != nil {
		return nil, err
	}
	w.Binary = gatherBinary(filepath.Join(d.Bin, cniconf.PluginType))
	return w, nil
}

// missingDir is the error for a directory the doctor must look at that
// does not exist: which flag names it and, in a pod, what mounts it.
func missingDir(dir, flag string) error {
	msg := fmt.Sprintf("%s does not exist: pass %s with this node's directory", dir, flag)
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		// In a pod (the DaemonSet's): the base DaemonSet does not mount
		// what the doctor reads.
		msg += "; in the DaemonSet's pod, deploy it with the doctor component (deploy/components/doctor), which mounts the node's directories at their own paths"
	}
	return errors.New(msg)
}

// nsInode returns the inode of the network namespace at path, following
// symlinks (a /proc/<pid>/ns/net link), and whether path is one at all: an
// entry of the netns dir whose namespace is gone is a plain empty file.
func nsInode(path string) (uint64, bool, error) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		return 0, false, err
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, false, err
	}
	return st.Ino, sfs.Type == unix.NSFS_MAGIC, nil
}

// gatherNetns finds the pod namespaces: the netns dir's entries and the
// namespaces of processes that differ from the node's (a runtime that does
// not pin them in the netns dir), one per inode.
func gatherNetns(w *World) error {
	byInode := map[uint64]int{}
	seen := func(path string, ino uint64, how string) int {
		if i, ok := byInode[ino]; ok {
			w.Netns[i].Seen = append(w.Netns[i].Seen, how)
			return i
		}
		byInode[ino] = len(w.Netns)
		w.Netns = append(w.Netns, Netns{Path: path, Inode: ino, Seen: []string{how}})
		return len(w.Netns) - 1
	}
	// The node's namespaces are not pods: pid 1's, the kernel threads'
	// (kthreadd, pid 2, is always in the initial one, where pid 1 may not
	// be under a supervisor of its own) and the doctor's.
	skip := map[uint64]bool{}
	for _, p := range []string{filepath.Join(w.Dirs.Proc, "1", "ns", "net"), filepath.Join(w.Dirs.Proc, "2", "ns", "net"), "/proc/self/ns/net"} {
		if ino, ok, err := nsInode(p); err == nil && ok {
			skip[ino] = true
		}
	}
	entries, err := os.ReadDir(w.Dirs.Netns)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("listing netns dir %s: %w", w.Dirs.Netns, err)
	}
	for _, e := range entries {
		path := filepath.Join(w.Dirs.Netns, e.Name())
		ino, ok, err := nsInode(path)
		if err != nil || !ok || skip[ino] {
			continue
		}
		seen(path, ino, "netns-dir")
	}
	procs, err := os.ReadDir(w.Dirs.Proc)
	if err != nil {
		return fmt.Errorf("listing %s: %w", w.Dirs.Proc, err)
	}
	var pids []int
	for _, e := range procs {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	for _, pid := range pids {
		path := filepath.Join(w.Dirs.Proc, strconv.Itoa(pid), "ns", "net")
		ino, ok, err := nsInode(path)
		if err != nil || !ok || skip[ino] {
			// Processes come and go while we look; one that is gone has
			// nothing to show.
			continue
		}
		i := seen(path, ino, "pid "+strconv.Itoa(pid))
		// A few processes per namespace are enough: a pod's sandbox
		// process is among the first, and every cgroup file costs a read.
		if len(w.Netns[i].Seen) <= maxCgroupReads {
			w.Netns[i].ContainerIDs = addIDs(w.Netns[i].ContainerIDs, cgroupIDs(filepath.Join(w.Dirs.Proc, strconv.Itoa(pid), "cgroup")))
		}
	}
	kept := w.Netns[:0]
	for _, n := range w.Netns {
		if len(n.Seen) > 4 {
			n.Seen = append(n.Seen[:4:4], fmt.Sprintf("%d more", len(n.Seen)-4))
		}
		ifs, err := link.Inventory(n.Path)
		if err != nil {
			if _, serr := os.Stat(n.Path); errors.Is(serr, fs.ErrNotExist) && !slices.Contains(n.Seen, "netns-dir") {
				// Its only process exited while we looked: a pod that is
				// gone, not one we cannot see into.
				continue
			}
			n.Err = err.Error()
		} else {
			n.Interfaces = interfaces(ifs)
		}
		kept = append(kept, n)
	}
	w.Netns = kept
	return nil
}

// maxCgroupReads bounds the cgroup files read per namespace.
const maxCgroupReads = 16

// cgroupIDs returns the container IDs (64 hex digits, as containerd,
// CRI-O and Docker name them) in a /proc/<pid>/cgroup file, with the
// systemd driver's "cri-containerd-", "crio-", "docker-" prefixes and
// ".scope" suffix taken off.
func cgroupIDs(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var ids []string
	for _, line := range strings.Split(string(data), "\n") {
		for _, part := range strings.FieldsFunc(line, func(r rune) bool { return r == '/' || r == ':' }) {
			part = strings.TrimSuffix(part, ".scope")
			if i := strings.LastIndexByte(part, '-'); i >= 0 {
				part = part[i+1:]
			}
			if isContainerID(part) {
				ids = addIDs(ids, []string{part})
			}
		}
	}
	return ids
}

func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func addIDs(to, ids []string) []string {
	for _, id := range ids {
		if !slices.Contains(to, id) {
			to = append(to, id)
		}
	}
	return to
}

func interfaces(ifs []link.Inventoried) []Interface {
	out := make([]Interface, 0, len(ifs))
	for _, l := range ifs {
		mac := ""
		if len(l.MAC) > 0 {
			mac = l.MAC.String()
		}
		out = append(out, Interface{Name: l.Name, Kind: l.Kind, NetkitMode: l.NetkitMode, MacvlanMode: l.MacvlanMode,
			IPVlanMode: l.IPVlanMode, Master: l.Master, MasterKind: l.MasterKind, Encap: l.EncapType, MAC: mac, Up: l.Up})
	}
	return out
}

// gatherCache reads libcni's cache through libcni itself, so the doctor
// reads exactly what the runtime wrote.
func gatherCache(w *World, cacheDir string) {
	dir := filepath.Join(cacheDir, "results")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return
	}
	cni := libcni.NewCNIConfigWithCacheDir(nil, cacheDir, nil)
	atts, err := cni.GetCachedAttachments("")
	if err != nil {
		w.CacheErrors = append(w.CacheErrors, FileError{File: dir, Err: err.Error()})
		return
	}
	known := map[string]bool{}
	for _, att := range atts {
		name := fmt.Sprintf("%s-%s-%s", att.Network, att.ContainerID, att.IfName)
		known[name] = true
		e := CacheEntry{File: filepath.Join(dir, name), ContainerID: att.ContainerID, IfName: att.IfName,
			Network: att.Network, Netns: att.NetNS, Config: json.RawMessage(att.Config)}
		if !json.Valid(att.Config) {
			e.Config = nil
		}
		if e.Netns != "" {
			if ino, ok, err := nsInode(e.Netns); err == nil && ok {
				e.NetnsInode = ino
			}
		}
		for _, kv := range att.CniArgs {
			if e.Args == nil {
				e.Args = map[string]string{}
			}
			e.Args[kv[0]] = kv[1]
		}
		if m, ok := att.CapabilityArgs["mac"].(string); ok {
			e.RuntimeMAC = m
		}
		var ver struct {
			CNIVersion string `json:"cniVersion"`
		}
		_ = json.Unmarshal(att.Config, &ver)
		if ver.CNIVersion == "" {
			ver.CNIVersion = types100.ImplementedSpecVersion
		}
		res, err := cni.GetNetworkListCachedResult(&libcni.NetworkConfigList{Name: att.Network, CNIVersion: ver.CNIVersion},
			&libcni.RuntimeConf{ContainerID: att.ContainerID, IfName: att.IfName})
		switch {
		case err != nil:
			e.ResultErr = err.Error()
		case res != nil:
			cur, err := types100.NewResultFromResult(res)
			if err != nil {
				e.ResultErr = err.Error()
				break
			}
			for _, ri := range cur.Interfaces {
				if ri != nil {
					e.Result = append(e.Result, ResultInterface{Name: ri.Name, MAC: ri.Mac, Sandbox: ri.Sandbox})
				}
			}
			e.IPs = resultIPs(cur)
		}
		w.Cache = append(w.Cache, e)
	}
	entries, _ := os.ReadDir(dir)
	for _, de := range entries {
		if !de.IsDir() && !known[de.Name()] {
			w.CacheErrors = append(w.CacheErrors, FileError{File: filepath.Join(dir, de.Name()),
				Err: "not a libcni cache entry with a container ID, interface and network"})
		}
	}
}

// gatherRecords reads macguard's records and looks for their attachments.
func gatherRecords(w *World) error {
	st := state.New(w.Dirs.Data)
	defer st.Close()
	entries, err := st.Records()
	if err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i].Record.Key().String(), entries[j].Record.Key().String()
		return a < b || (a == b && entries[i].File < entries[j].File)
	})
	for _, e := range entries {
		w.Records = append(w.Records, observeEntry(e, w.Netns))
	}
	w.LegacyRecords, err = st.Legacy()
	return err
}

// observeRecord loads the record of k again (for --fix, under the lock)
// and observes it.
func observeRecord(st *state.Store, k state.Key, known []Netns) Record {
	r, found, err := st.Load(k)
	if err == nil && !found {
		err = errors.New("removed while the doctor was reading")
	}
	return observeEntry(state.Entry{File: st.File(k), Record: r, Err: err}, known)
}

// observeEntry checks whether a record's netns and interface still exist.
// known are the namespaces already inventoried.
func observeEntry(e state.Entry, known []Netns) Record {
	r := e.Record
	k := r.Key()
	out := Record{File: e.File, Network: k.Network, ContainerID: k.ContainerID, IfName: k.IfName}
	if e.Err != nil {
		out.Err = e.Err.Error()
		return out
	}
	out.Netns, out.OriginalMAC, out.AppliedMAC = r.Netns, r.OriginalMAC, r.AppliedMAC
	ino, ok, err := nsInode(r.Netns)
	switch {
	case errors.Is(err, fs.ErrNotExist) || (err == nil && !ok):
		out.NetnsGone = true
		return out
	case err != nil:
		out.NetnsErr = err.Error()
		return out
	}
	out.NetnsInode = ino
	for _, n := range known {
		if n.Inode == ino && n.Err == "" {
			for _, ifc := range n.Interfaces {
				out.IfPresent = out.IfPresent || ifc.Name == k.IfName
			}
			return out
		}
	}
	ifs, err := link.Inventory(r.Netns)
	if err != nil {
		out.NetnsErr = err.Error()
		return out
	}
	for _, ifc := range ifs {
		out.IfPresent = out.IfPresent || ifc.Name == k.IfName
	}
	return out
}

// gatherConfs reads the conf dir in libcni's order and the --conf files.
func gatherConfs(w *World, extra []string) error {
	files, err := libcni.ConfFiles(w.Dirs.Conf, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return fmt.Errorf("listing CNI conf dir %s: %w", w.Dirs.Conf, err)
	}
	sort.Strings(files)
	for _, f := range files {
		cf := ConfFile{Path: f}
		data, err := os.ReadFile(f)
		if err != nil {
			cf.Err = err.Error()
		}
		cf.Content = string(data)
		w.Confs = append(w.Confs, cf)
	}
	for _, f := range extra {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("reading --conf %s: %w", f, err)
		}
		cfs, err := ExtraConfs(f, data)
		if err != nil {
			return fmt.Errorf("--conf %s: %w", f, err)
		}
		w.Extra = append(w.Extra, cfs...)
	}
	return nil
}

// ExtraConfs turns a file given with --conf into the configurations to
// check: a conflist or plugin config as it is, or the config of every
// NetworkAttachmentDefinition in a (multi-document) YAML or JSON manifest,
// including the items of a List (kubectl get net-attach-def -o yaml). A file
// that starts with "{" or is named like a CNI configuration (.conf,
// .conflist, .json) but is not valid JSON is passed on as a configuration,
// so that the check reports its JSON error (conf-invalid).
func ExtraConfs(path string, data []byte) ([]ConfFile, error) {
	trimmed := bytes.TrimSpace(data)
	switch {
	case json.Valid(trimmed):
		var probe struct {
			Kind string `json:"kind"`
		}
		_ = json.Unmarshal(trimmed, &probe)
		if probe.Kind == "" {
			return []ConfFile{{Path: path, Content: string(data)}}, nil
		}
	case bytes.HasPrefix(trimmed, []byte("{")) || slices.Contains([]string{".conf", ".conflist", ".json"}, filepath.Ext(path)):
		return []ConfFile{{Path: path, Content: string(data)}}, nil
	}
	var out []ConfFile
	docs, err := yamlDocuments(data)
	if err != nil {
		return nil, fmt.Errorf("not a YAML manifest: %w", err)
	}
	for i, doc := range docs {
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d is not YAML: %w", i+1, err)
		}
		cfs, err := manifestNADs(path, j)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		out = append(out, cfs...)
	}
	if len(out) == 0 {
		return nil, errors.New("neither a CNI configuration nor a manifest with a NetworkAttachmentDefinition")
	}
	return out, nil
}

// manifestNADs returns the configs of the NetworkAttachmentDefinitions in
// one manifest object: the object itself, or the items of a List.
func manifestNADs(path string, j []byte) ([]ConfFile, error) {
	var m struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Spec struct {
			Config string `json:"config"`
		} `json:"spec"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	switch {
	case m.Kind == "List" || (strings.HasSuffix(m.Kind, "List") && m.Items != nil):
		var out []ConfFile
		for i, item := range m.Items {
			cfs, err := manifestNADs(path, item)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i+1, err)
			}
			out = append(out, cfs...)
		}
		return out, nil
	case m.Kind != "NetworkAttachmentDefinition":
		return nil, nil
	}
	ns := m.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	return []ConfFile{{Path: path, NAD: ns + "/" + m.Metadata.Name, Content: m.Spec.Config}}, nil
}

// yamlDocuments splits a multi-document manifest as kubectl does, with
// apimachinery's YAML reader (a line "---", which a comment may follow,
// separates documents); blank documents are dropped.
func yamlDocuments(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if d = bytes.TrimSpace(d); len(d) > 0 {
			docs = append(docs, d)
		}
	}
}

// gatherBinary looks at the plugin and asks it for its version, the way a
// person would (CNI_COMMAND unset).
func gatherBinary(path string) Binary {
	b := Binary{Path: path}
	fi, err := os.Stat(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			b.Present, b.Err = true, err.Error()
		}
		return b
	}
	b.Present = true
	b.Executable = fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
	if !b.Executable {
		return b
	}
	ctx, cancel := context.WithTimeout(context.Background(), versionTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "version")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := err.Error()
		if s := strings.TrimSpace(stderr.String()); s != "" {
			msg += ": " + firstLine(s)
		}
		b.Err = msg
		return b
	}
	b.Version = firstLine(strings.TrimSpace(stdout.String()))
	return b
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// Fix removes the records r reports stale, under the exclusive lock the
// plugin's GC takes, after checking again under the lock that each is
// still stale (an ADD may have reused the name meanwhile). It returns the
// files removed and one message per record it could not remove.
func Fix(dir string, r Report) (removed, errs []string) {
	var stale []RecordState
	for _, rec := range r.Records {
		if rec.State == "stale" {
			stale = append(stale, rec)
		}
	}
	if len(stale) == 0 {
		return nil, nil
	}
	st := state.New(dir)
	unlock, err := st.Lock(true)
	if err != nil {
		return nil, []string{fmt.Sprintf("--fix: %v", err)}
	}
	defer unlock()
	for _, rec := range stale {
		k := state.Key{Network: rec.Network, ContainerID: rec.ContainerID, IfName: rec.IfName}
		again := observeRecord(st, k, nil)
		if again.Err != "" || again.NetnsErr != "" || (!again.NetnsGone && again.IfPresent) {
			errs = append(errs, fmt.Sprintf("--fix: record %s is no longer stale; left alone", rec.File))
			continue
		}
		if err := st.Remove(k); err != nil {
			errs = append(errs, fmt.Sprintf("--fix: %v", err))
			continue
		}
		removed = append(removed, rec.File)
	}
	return removed, errs
}

// isNotRoot is the check behind exit code 2: looking into another
// process's network namespace needs CAP_SYS_ADMIN, which only root has.
func isNotRoot() bool { return syscall.Geteuid() != 0 }
