package stdin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// endless yields zeros forever, like a caller that never closes stdin
// while writing.
type endless struct{}

func (endless) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("injected read error") }

func TestRead(t *testing.T) {
	const limit = 1000
	tests := []struct {
		name string
		in   io.Reader
		size int // expected length when ok
		code uint
	}{
		{"empty", bytes.NewReader(nil), 0, 0},
		{"one byte", bytes.NewReader([]byte("x")), 1, 0},
		{"exactly the limit", bytes.NewReader(make([]byte, limit)), limit, 0},
		{"one byte over", bytes.NewReader(make([]byte, limit+1)), 0, types.ErrInvalidNetworkConfig},
		{"ten times over", bytes.NewReader(make([]byte, 10*limit)), 0, types.ErrInvalidNetworkConfig},
		{"endless", endless{}, 0, types.ErrInvalidNetworkConfig},
		{"read error", failing{}, 0, types.ErrIOFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := Read(tt.in, limit)
			if tt.code == 0 {
				if err != nil || len(data) != tt.size {
					t.Fatalf("got %d bytes, %v; want %d bytes", len(data), err, tt.size)
				}
				return
			}
			if err == nil || err.Code != tt.code {
				t.Fatalf("got %v, want code %d", err, tt.code)
			}
			if tt.code == types.ErrInvalidNetworkConfig && !strings.Contains(err.Msg, "1000 bytes") {
				t.Fatalf("message does not name the limit: %s", err.Msg)
			}
		})
	}
}

func TestSizeNamesMiB(t *testing.T) {
	if got := size(Limit); got != "1 MiB (1048576 bytes)" {
		t.Fatalf("size(Limit) = %q", got)
	}
}

// TestReplaceRoundTrip: what skel reads from the replacement is byte for
// byte what was on stdin, also past the 64 KiB a pipe buffers.
func TestReplaceRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 64 << 10, 64<<10 + 1, 300 << 10, Limit} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			want := make([]byte, n)
			for i := range want {
				want[i] = byte(i * 7)
			}
			f := tempFile(t, want)
			r, cniErr := Replace(f, Limit)
			if cniErr != nil {
				t.Fatal(cniErr)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read back %d bytes (%v), want the %d written", len(got), err, n)
			}
		})
	}
}

func tempFile(t *testing.T, data []byte) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	// Replace may hand f back as the reader, which its test closes first.
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// TestBoundInProcess runs Bound in a child copy of this test binary, since
// it replaces os.Stdin and may exit.
func TestBoundInProcess(t *testing.T) {
	if os.Getenv("MACGUARD_STDIN_CHILD") != "" {
		Bound(16)
		if os.Getenv("CNI_COMMAND") == "VERSION" {
			// Reaching this line is the point: Bound did not wait for a
			// stdin that is never closed.
			if _, err := os.Stdout.WriteString("bound returned"); err != nil {
				os.Exit(4)
			}
			os.Exit(0)
		}
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			os.Exit(3)
		}
		if _, err := os.Stdout.Write(data); err != nil {
			os.Exit(4)
		}
		os.Exit(0)
	}
	tests := []struct {
		name, command string
		stdin         io.Reader // nil: a pipe that is never closed
		wantOut       string
		wantCode      uint
	}{
		{"within the limit", "ADD", strings.NewReader("0123456789abcdef"), "0123456789abcdef", 0},
		{"over the limit", "ADD", strings.NewReader("0123456789abcdefX"), "", types.ErrInvalidNetworkConfig},
		{"endless", "DEL", endless{}, "", types.ErrInvalidNetworkConfig},
		// VERSION must not wait for the end of a stdin nobody closes.
		{"VERSION leaves stdin alone", "VERSION", nil, "bound returned", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBoundInProcess$")
			cmd.Env = append(os.Environ(), "MACGUARD_STDIN_CHILD=1", "CNI_COMMAND="+tt.command)
			if tt.stdin != nil {
				cmd.Stdin = tt.stdin
			} else {
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				defer r.Close()
				cmd.Stdin = r
			}
			var out bytes.Buffer
			cmd.Stdout = &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill() // should it exit meanwhile, done still delivers
				t.Fatalf("child still reading stdin after 20s (killed: %v)", <-done)
			}
			if tt.wantCode == 0 {
				if err != nil || out.String() != tt.wantOut {
					t.Fatalf("child: %v, stdout %q; want %q", err, out.String(), tt.wantOut)
				}
				return
			}
			var e types.Error
			if err == nil || json.Unmarshal(out.Bytes(), &e) != nil || e.Code != tt.wantCode || !strings.Contains(e.Msg, "16 bytes") {
				t.Fatalf("child: %v, stdout %q; want exit 1 and a code %d error naming the 16-byte limit", err, out.String(), tt.wantCode)
			}
		})
	}
}
