package doctor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/macguard-cni/macguard/pkg/buildinfo"
	"github.com/macguard-cni/macguard/pkg/ctl/cli"
)

// Exit codes.
const (
	ExitHealthy  = 0
	ExitProblems = 1
	ExitCannot   = 2
)

// clusterTimeout bounds every request to the API server.
const clusterTimeout = 30 * time.Second

const usage = `macguardctl doctor: what is wrong with the pod MACs on this node, and what to do.

Run as root on a node, or in the macguard DaemonSet's pod deployed with the
doctor component (kubectl -n macguard exec ds/macguard -- /macguardctl doctor).
Read-only unless --fix is given, which removes only stale records.

Exit code: 0 healthy, 1 warnings or errors found, 2 could not look.

Flags:
`

// Main is `macguardctl doctor`; it returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	d := DefaultDirs
	fs.StringVar(&d.Conf, "conf-dir", d.Conf, "CNI configuration directory")
	fs.StringVar(&d.Bin, "bin-dir", d.Bin, "CNI plugin directory (where the macguard plugin is)")
	fs.StringVar(&d.Data, "data-dir", d.Data, "macguard's dataDir (records of changed MACs)")
	fs.StringVar(&d.Cache, "cache-dir", d.Cache, "libcni's cache directory (results under results/)")
	fs.StringVar(&d.MultusCache, "multus-cache-dir", d.MultusCache, "Multus' cache directory (its cniDir), where its delegates' results are")
	fs.StringVar(&d.Netns, "netns-dir", d.Netns, "the runtimes' network namespace directory")
	fs.StringVar(&d.Proc, "proc", d.Proc, "procfs, to find namespaces only processes hold")
	jsonOut := fs.Bool("json", false, "print the report as JSON (schema: docs/doctor.md)")
	fix := fs.Bool("fix", false, "remove stale records (under the lock the plugin's GC takes); nothing else is changed")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig for the cluster checks (default: $KUBECONFIG when set, else in-cluster credentials when present)")
	node := fs.String("node", os.Getenv("NODE_NAME"), "this node's Kubernetes name (default $NODE_NAME, else the hostname)")
	noCluster := fs.Bool("no-cluster", false, "skip the cluster checks even with credentials")
	var confs cli.ListFlag
	fs.Var(&confs, "conf", "also check this conflist, plugin config or NetworkAttachmentDefinition manifest (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitHealthy
		}
		return ExitCannot
	}
	if fs.NArg() > 0 {
		// A usage error, like an unknown flag: no JSON either.
		fmt.Fprintf(stderr, "macguardctl doctor: unexpected argument %q\n", fs.Arg(0))
		return ExitCannot
	}
	if *node == "" {
		if h, err := os.Hostname(); err == nil {
			*node = h
		}
	}
	self := Build{Version: buildinfo.Version, Commit: buildinfo.Commit}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "macguardctl doctor: could not look: %v\n", err)
		if *jsonOut {
			// Monitoring gets something parseable (docs/doctor.md).
			_ = renderCannotLook(stdout, CannotLook{SchemaVersion: SchemaVersion, Node: *node, Macguardctl: self, Error: err.Error()})
		}
		return ExitCannot
	}
	if isNotRoot() {
		return fail(errors.New("must run as root: it enters every pod's network namespace (CAP_SYS_ADMIN) and reads root-only directories"))
	}
	// The conf dir, bin dir and procfs exist on every CNI node, and a
	// directory named on the command line must exist: otherwise the report
	// would be a clean bill of health for a place never looked at.
	required := map[string]bool{d.Conf: true, d.Bin: true, d.Proc: true}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		// Not --data-dir: the plugin creates its dataDir on the first MAC
		// it changes, so an absent one is the info finding dir-missing,
		// given or not.
		case "conf-dir", "bin-dir", "cache-dir", "multus-cache-dir", "netns-dir", "proc":
			required[f.Value.String()] = true
		}
	})
	w, err := Gather(Options{Dirs: d, Required: required, Confs: confs.Values, Node: *node}, self)
	if err != nil {
		return fail(err)
	}
	if !*noCluster {
		if err := gatherClusterInto(w, *kubeconfig, *node); err != nil {
			return fail(err)
		}
	}
	r := Analyze(w)
	if *fix {
		w.Fixed, w.FixErrors = Fix(d.Data, r)
		r = Analyze(w)
	}
	if *jsonOut {
		err = RenderJSON(stdout, r)
	} else {
		err = RenderText(stdout, r)
	}
	if err != nil {
		fmt.Fprintf(stderr, "macguardctl doctor: writing the report: %v\n", err)
		return ExitCannot
	}
	if r.Summary.Status != "healthy" {
		return ExitProblems
	}
	return ExitHealthy
}

// gatherClusterInto runs the cluster checks' reads into w. Credentials
// named explicitly (--kubeconfig, $KUBECONFIG) that cannot be loaded are an
// error: the doctor could not look where it was told to. No credentials at
// all is w.ClusterNotChecked; a cluster that fails to answer (unreachable,
// forbidden) is w.ClusterErr: the node report stands either way.
func gatherClusterInto(w *World, kubeconfig, node string) error {
	dc, none, err := client(kubeconfig)
	switch {
	case err != nil:
		return err
	case none != "":
		w.ClusterNotChecked = none
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	c, err := GatherCluster(ctx, dc, node)
	if err != nil {
		w.ClusterErr = err.Error()
		return nil
	}
	w.Cluster = c
	return nil
}

// client builds the API client: from --kubeconfig when given, else from
// $KUBECONFIG when set (through clientcmd's default loading rules, as
// kubectl reads it: a list of files, merged), else from in-cluster
// credentials when the pod has them. Without any it returns why, and the
// cluster checks are skipped. It is the dynamic client only, for pods and
// the node as well as NADs: the typed clientset would cost the agent mode
// of this binary its memory (see podResource).
func client(kubeconfig string) (dynamic.Interface, string, error) {
	var cfg *rest.Config
	var err error
	switch env := os.Getenv("KUBECONFIG"); {
	case kubeconfig != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, "", fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
	case env != "":
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, "", fmt.Errorf("kubeconfig from $KUBECONFIG (%s): %w", env, err)
		}
	default:
		cfg, err = rest.InClusterConfig()
		if err != nil {
			// Not in a pod, or no service account token mounted (the base
			// DaemonSet mounts none; the doctor component does).
			return nil, "no in-cluster service account token, no --kubeconfig and no $KUBECONFIG", nil
		}
	}
	cfg.UserAgent = "macguardctl-doctor/" + buildinfo.Version
	cfg.Timeout = clusterTimeout
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("cluster client: %w", err)
	}
	return dc, "", nil
}
