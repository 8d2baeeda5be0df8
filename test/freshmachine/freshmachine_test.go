// Package freshmachine runs the install steps of the project's scripts on
// a fresh machine: one that has none of the packages they look for. Such a
// machine is simulated with PATH alone, so the test needs no root and
// passes or fails the same on a machine that has every package:
//
//   - a directory of stubs: dpkg-query knows no package (exit 1, as for a
//     name dpkg has never heard of), apt-get records what it is asked and
//     either installs nothing successfully or refuses (exit 100, with a
//     message that names no package), apt-cache finds nothing, id -u says
//     root, systemctl records;
//   - a directory of links to the real tools the steps use (bash, awk,
//     coreutils, go, make, ...) and nothing else: no ip, openssl, nsenter,
//     qemu, shellcheck.
//
// Each step must name every missing package for installation (after an
// apt-get update) and exit 0; with apt-get refusing it must fail with a
// message of its own that names the packages. See issue 17: dpkg-query's
// exit 1 for an unknown package once ended hack/k8s/build.sh silently.
package freshmachine

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// tools are the real programs a step may run; anything else is absent on
// the fake machine. Every one is part of Debian's essential set or of the
// tool chain the README asks for (go, make, git).
var tools = []string{
	"bash", "sh", "env", "awk", "cat", "chmod", "cksum", "cut", "dirname", "find", "flock",
	"grep", "head", "ls", "mkdir", "mktemp", "mv", "rm", "sed", "sort", "tail", "touch", "tr",
	"uname", "go", "make", "git",
}

// stubs stand in for the package tools. FAKE_LOG collects one line per
// call; FAKE_APT_REFUSE=1 makes apt-get install fail.
var stubs = map[string]string{
	"dpkg-query": `echo "dpkg-query $*" >>"$FAKE_LOG"
for a; do last=$a; done
echo "dpkg-query: no packages found matching $last" >&2
exit 1`,
	"dpkg": `echo "dpkg $*" >>"$FAKE_LOG"
echo "dpkg: stub: no packages" >&2
exit 1`,
	"apt-get": `echo "apt-get $*" >>"$FAKE_LOG"
case " $* " in
*" install "*)
	if [ "${FAKE_APT_REFUSE:-}" = 1 ]; then
		echo "E: stub apt-get refuses every installation" >&2
		exit 100
	fi ;;
*" download "*)
	echo "E: stub apt-get downloads nothing" >&2
	exit 100 ;;
esac
exit 0`,
	"apt-cache": `echo "apt-cache $*" >>"$FAKE_LOG"
exit 0`,
	"id": `case "$1" in -u) echo 0 ;; *) echo "uid=0(root) gid=0(root) groups=0(root)" ;; esac`,
	"systemctl": `echo "systemctl $*" >>"$FAKE_LOG"
exit 0`,
}

// machine is one fake fresh machine.
type machine struct {
	path string // PATH: stubs, then tools
	log  string // FAKE_LOG
	dir  string // scratch space for the step
}

func newMachine(t *testing.T) machine {
	t.Helper()
	dir := t.TempDir()
	stubDir, toolDir := filepath.Join(dir, "stubs"), filepath.Join(dir, "tools")
	for _, d := range []string{stubDir, toolDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range stubs {
		if err := os.WriteFile(filepath.Join(stubDir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range tools {
		real, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("%s is not on this machine's PATH; the fake machine needs it: %v", name, err)
		}
		if err := os.Symlink(real, filepath.Join(toolDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return machine{path: stubDir + ":" + toolDir, log: filepath.Join(dir, "calls.log"), dir: dir}
}

// run runs argv in the repository root on the fake machine, with extra
// environment, and returns its exit code, stderr and the stubs' log.
func (m machine) run(t *testing.T, root string, env []string, argv ...string) (code int, stderr, calls string) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = root
	cmd.Env = append(withoutPath(os.Environ()), "PATH="+m.path, "FAKE_LOG="+m.log)
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("%v did not finish within 5 minutes; stderr:\n%s", argv, errb.String())
	}
	code = 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%v: %v", argv, err)
		}
		code = ee.ExitCode()
	}
	b, rerr := os.ReadFile(m.log)
	if rerr != nil && !os.IsNotExist(rerr) {
		t.Fatal(rerr)
	}
	t.Logf("%s: exit %d\nstdout:\n%s\nstderr:\n%s\nstub calls:\n%s", strings.Join(argv, " "), code, out.String(), errb.String(), b)
	return code, errb.String(), string(b)
}

func withoutPath(env []string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, "PATH=") && !strings.HasPrefix(e, "FAKE_") {
			out = append(out, e)
		}
	}
	return out
}

// pin reads NAME := VALUE from a makefile of the repository, so that the
// test asks for the versions the build pins.
func pin(t *testing.T, root, file, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s*:?=\s*(\S+)\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s sets no %s", file, name)
	}
	return string(m[1])
}

// installed returns the packages of every `apt-get install` call, and
// whether an `apt-get update` came before the first.
func installed(calls string) (pkgs []string, updatedFirst bool) {
	updated := false
	for _, line := range strings.Split(calls, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "apt-get" {
			continue
		}
		switch {
		case contains(f, "update"):
			updated = true
		case contains(f, "install"):
			if pkgs == nil {
				updatedFirst = updated
			}
			for _, a := range f[1:] {
				if a != "install" && !strings.HasPrefix(a, "-") {
					pkgs = append(pkgs, a)
				}
			}
		}
	}
	return pkgs, updatedFirst
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestInstallStepsOnAFreshMachine(t *testing.T) {
	root, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	containerd := pin(t, root, "hack/mk/k8s.mk", "K8S_CONTAINERD_DEB_VERSION")
	runc := pin(t, root, "hack/mk/k8s.mk", "K8S_RUNC_DEB_VERSION")

	type step struct {
		name string
		argv []string
		// env for the step; %s is the machine's scratch directory.
		env []string
		// want: every package the step must ask apt-get to install; none
		// means the step needs no Debian package and must not call apt-get.
		want []string
		// absent: files (under the scratch directory) that must not exist
		// after the step, pass or fail.
		absent []string
	}
	steps := []step{
		{
			name: "hack/deps.sh",
			argv: []string{"hack/deps.sh"},
			want: []string{"iproute2"},
		},
		{
			// Only the install step: Kubernetes, etcd and the plugins are
			// not built. POLICY_RC_D keeps the step's policy-rc.d off the
			// machine's /usr/sbin.
			name: "hack/k8s/build.sh containerd",
			argv: []string{"hack/k8s/build.sh", "containerd"},
			env: []string{
				"K8S_CACHE=%s/k8s", "K8S_VERSION=v0.0.0-test", "MULTUS_VERSION=v0.0.0-test",
				"CNI_PLUGINS_VERSION=v0.0.0-test", "ETCD_DEB_VERSION=0-test",
				"CONTAINERD_DEB_VERSION=" + containerd, "RUNC_DEB_VERSION=" + runc,
				"POLICY_RC_D=%s/policy-rc.d",
			},
			want:   []string{"containerd=" + containerd, "runc=" + runc, "openssl", "iproute2", "util-linux"},
			absent: []string{"policy-rc.d"},
		},
		{
			name: "hack/vmtest/run.sh packages (the VM suite's kernel/QEMU step)",
			argv: []string{"hack/vmtest/run.sh", "packages"},
			env:  []string{"VMTEST_CACHE=%s/vmtest"},
			want: []string{"qemu-system-x86", "busybox-static", "xz-utils", "zstd", "kmod"},
		},
		{
			// test/kubevirt's Debian packages (virsh, libvirt's QEMU
			// driver, nft, QEMU, busybox) and unzip for the module.
			name:   "hack/kubevirt/prepare.sh packages",
			argv:   []string{"hack/kubevirt/prepare.sh", "packages"},
			env:    []string{"KUBEVIRT_CACHE=%s/kubevirt", "POLICY_RC_D=%s/policy-rc.d"},
			want:   []string{"unzip", "libvirt-clients", "libvirt-daemon-driver-qemu", "nftables", "qemu-system-x86", "busybox-static"},
			absent: []string{"policy-rc.d"},
		},
		{
			// The bench's tools are Go programs (go install at pinned
			// versions): no Debian package, so a machine without any
			// still builds them and apt-get is never asked.
			name: "make bench-tools",
			argv: []string{"make", "--no-print-directory", "bench-tools"},
		},
	}
	for _, s := range steps {
		for _, refuse := range []bool{false, true} {
			if refuse && len(s.want) == 0 {
				continue // nothing to refuse: the absent run shows apt-get is not called
			}
			name := s.name + "/packages absent"
			if refuse {
				name = s.name + "/apt-get refuses"
			}
			t.Run(name, func(t *testing.T) {
				m := newMachine(t)
				env := make([]string, 0, len(s.env)+1)
				for _, e := range s.env {
					env = append(env, strings.ReplaceAll(e, "%s", m.dir))
				}
				if refuse {
					env = append(env, "FAKE_APT_REFUSE=1")
				}
				code, stderr, calls := m.run(t, root, env, s.argv...)
				pkgs, updatedFirst := installed(calls)

				for _, f := range s.absent {
					if _, err := os.Stat(filepath.Join(m.dir, f)); err == nil {
						t.Errorf("%s left %s behind", s.name, f)
					}
				}
				if len(s.want) == 0 {
					if code != 0 {
						t.Fatalf("%s exited %d on a machine without any Debian package; stderr:\n%s", s.name, code, stderr)
					}
					if strings.Contains(calls, "apt-get") {
						t.Errorf("%s called apt-get, but it needs no Debian package:\n%s", s.name, calls)
					}
					return
				}
				for _, p := range s.want {
					if !contains(pkgs, p) {
						t.Errorf("%s did not ask apt-get to install %s (asked for %v)", s.name, p, pkgs)
					}
				}
				if len(pkgs) > 0 && !updatedFirst {
					t.Errorf("%s installed without an apt-get update first (a fresh machine's package lists are empty):\n%s", s.name, calls)
				}
				if !refuse {
					if code != 0 {
						t.Fatalf("%s exited %d on a machine that lacks %v; stderr:\n%s", s.name, code, s.want, stderr)
					}
					return
				}
				if code == 0 {
					t.Fatalf("%s exited 0 although apt-get refused to install %v", s.name, s.want)
				}
				// The stub's refusal names no package: the names must come
				// from the step's own message.
				var msg string
				for _, line := range strings.Split(stderr, "\n") {
					if strings.Contains(line, "apt-get install failed for") {
						msg = line
					}
				}
				if msg == "" {
					t.Fatalf("%s failed (exit %d) without saying that the install failed; stderr:\n%s", s.name, code, stderr)
				}
				for _, p := range s.want {
					if !strings.Contains(msg, p) {
						t.Errorf("the failure message does not name %s: %q", p, msg)
					}
				}
			})
		}
	}
}

// TestStopSaysWhy: a command that fails under errexit ends a script with
// its file, line, command and status (hack/lib/errexit.sh), and a failing
// pipeline stage is named even when the last stage succeeds.
func TestStopSaysWhy(t *testing.T) {
	root, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "stops.sh")
	body := fmt.Sprintf(`#!/usr/bin/env bash
. %q
# A failure that is handled does not stop the script or print anything.
if ! grep -q nothing /dev/null; then :; fi
v=$(false) || true
found() { dpkg-query -W no-such-package 2>/dev/null | awk '{print $1}'; }
x=$(found)
echo "not reached: $x"
`, filepath.Join(root, "hack/lib/errexit.sh"))
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	m := newMachine(t)
	code, stderr, _ := m.run(t, dir, nil, script)
	if code == 0 {
		t.Fatalf("the script did not stop; stderr:\n%s", stderr)
	}
	want := script + ":7: stopping: `x=$(found)` exited 1"
	if strings.TrimSpace(stderr) != want {
		t.Errorf("stderr:\n%s\nwant exactly:\n%s", stderr, want)
	}

	// The same pipeline as a top-level command: its failing stage is named.
	body = strings.Replace(body, "x=$(found)", "found", 1)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	code, stderr, _ = m.run(t, dir, nil, script)
	want = script + ":6: stopping: `awk '{print $1}'` exited 1 (pipeline stages: 1 0) (in found)"
	if code == 0 || strings.TrimSpace(stderr) != want {
		t.Errorf("exit %d, stderr:\n%s\nwant exactly:\n%s", code, stderr, want)
	}
}
