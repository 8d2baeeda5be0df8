package install

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/macguard-cni/macguard/pkg/buildinfo"
	"github.com/macguard-cni/macguard/pkg/ctl/cli"
)

const installUsage = `usage: macguardctl install [flags]

Copies the macguard plugin binary into the CNI bin directory and chains a
macguard entry into a conflist, atomically and idempotently. With --watch it
keeps running and re-applies whenever the CNI agent rewrites the file (and
every --resync).

Every flag can also be set through the environment: --cni-bin-dir is
MACGUARD_CNI_BIN_DIR, --chain-into is MACGUARD_CHAIN_INTO (comma-separated),
--plugin-binary is MACGUARD_PLUGIN_BINARY, and so on; flags win. The
DaemonSet sets the environment so that its readiness probe,
"macguardctl install --check", checks exactly what it installs.

Flags:
`

const uninstallUsage = `usage: macguardctl uninstall [flags]

Removes every macguard entry from the given conflists, atomically, and with
--remove-binary then the binary too. Files that are missing or have no entry
are left alone. With --watch it keeps running (and keeps the entry out) until
terminated, for a DaemonSet.

Every flag can also be set through the environment (MACGUARD_CHAIN_INTO,
MACGUARD_CNI_BIN_DIR, MACGUARD_REMOVE_BINARY, ...); flags win.

Flags:
`

// InstallMain is `macguardctl install`; args are the arguments after
// "install". It returns the exit code: 0 done (or, with --watch, stopped
// by SIGTERM/SIGINT), 1 failed (or --check found something not in place),
// 2 bad usage.
func InstallMain(args []string, stdout, stderr io.Writer) int {
	return runCLI(false, args, stdout, stderr, os.LookupEnv)
}

// UninstallMain is `macguardctl uninstall`, with the same exit codes as
// InstallMain.
func UninstallMain(args []string, stdout, stderr io.Writer) int {
	return runCLI(true, args, stdout, stderr, os.LookupEnv)
}

// envName is the environment variable for a flag: --cni-bin-dir is
// MACGUARD_CNI_BIN_DIR.
func envName(flagName string) string {
	return "MACGUARD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse reads the flags of install (uninstall false) or uninstall from the
// environment and then args.
func parse(uninstall bool, args []string, stderr io.Writer, lookup func(string) (string, bool)) (Options, bool, error) {
	name, usage := "install", installUsage
	if uninstall {
		name, usage = "uninstall", uninstallUsage
	}
	var o Options
	var chain cli.ListFlag
	var check bool
	fs := flag.NewFlagSet("macguardctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.Var(&chain, "chain-into", "conflist `file` to "+map[bool]string{false: "add the macguard entry to", true: "remove macguard entries from"}[uninstall]+"; repeatable")
	fs.BoolVar(&o.Watch, "watch", false, "keep running: re-apply on every change of the files and every --resync, until SIGTERM")
	fs.DurationVar(&o.Resync, "resync", DefaultResync, "with --watch, how often every file is re-checked even without a change event")
	fs.BoolVar(&check, "check", false, "change nothing; print the state of every file and exit 0 when all are as wanted, 1 otherwise (the readiness probe)")
	if uninstall {
		fs.StringVar(&o.CNIBinDir, "cni-bin-dir", "", "CNI bin `directory` holding the macguard binary (used with --remove-binary)")
		fs.BoolVar(&o.RemoveBinary, "remove-binary", false, "also remove the binary, after the entries are gone (only once no pod created with macguard remains: the runtime calls it again on DEL)")
	} else {
		fs.StringVar(&o.CNIBinDir, "cni-bin-dir", "", "copy the plugin binary to `directory`/macguard (atomic, skipped when the checksum matches)")
		fs.StringVar(&o.Source, "plugin-binary", "", "the macguard plugin `file` to install (default: macguard next to this program, /macguard in the image)")
		fs.StringVar(&o.PluginConfig, "plugin-config", DefaultPluginConfig, "the macguard entry as `JSON`; \"type\" may be left out")
		fs.BoolVar(&o.ConvertConf, "convert-conf", false, "allow replacing a single-plugin .conf/.json named by --chain-into with a .conflist of that plugin followed by macguard")
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := lookup(envName(f.Name))
		if !ok || envErr != nil {
			return
		}
		if f.Name == "chain-into" {
			chain.SetFromEnv(v)
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			envErr = fmt.Errorf("%s=%q: %w", envName(f.Name), v, err)
		}
	})
	if envErr != nil {
		return o, false, envErr
	}
	if err := fs.Parse(args); err != nil {
		return o, false, err
	}
	if fs.NArg() > 0 {
		return o, false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.ChainInto = chain.Values
	return o, check, nil
}

func runCLI(uninstall bool, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) int {
	cmd := "install"
	if uninstall {
		cmd = "uninstall"
	}
	opts, check, err := parse(uninstall, args, stderr, lookup)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "macguardctl %s: %v\n", cmd, err)
		return 2
	}
	if check {
		ok, err := Check(opts, uninstall, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "macguardctl %s --check: %v\n", cmd, err)
			return 2
		}
		if !ok {
			return 1
		}
		return 0
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("cmd", cmd)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := Run(ctx, opts, uninstall, log); err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "macguardctl %s: %v\n", cmd, err)
			return 2
		}
		return 1
	}
	return 0
}

// errUsage marks option errors found before anything was touched.
var errUsage = errors.New("invalid options")

// Run performs an install (uninstall false) or uninstall. Without Watch it
// makes one pass and returns the first error, already logged. With Watch it
// returns nil once ctx is done; problems on the way are logged and retried.
func Run(ctx context.Context, opts Options, uninstall bool, log *slog.Logger) error {
	r, err := newRunner(opts, log, uninstall)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	attrs := []any{"version", buildinfo.String(), "cni_bin_dir", r.opts.CNIBinDir}
	if r.opts.Source != "" {
		attrs = append(attrs, "plugin_binary", r.opts.Source)
	}
	attrs = append(attrs, "chain_into", strings.Join(r.opts.ChainInto, ","), "watch", r.opts.Watch)
	log.Info("starting", attrs...)
	if !r.opts.Watch {
		return r.applyAll()
	}
	if err := r.watch(ctx); err != nil {
		log.Error(err.Error())
		return err
	}
	log.Info("stopped", "reason", context.Cause(ctx))
	return nil
}
