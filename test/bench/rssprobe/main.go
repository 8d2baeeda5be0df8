// Command rssprobe runs one program and reports the program's own peak RSS.
//
// The bench cannot take ru_maxrss from its own wait4: Go starts children
// with vfork (CLONE_VM), and at exec the kernel records the high-water RSS
// of the memory the child shared until then, the bench's, as the child's
// peak. This launcher is small, so the peak it passes on to the plugin it
// starts is small too (the bench measures and reports that floor), and it
// sends the plugin's rusage to fd 3 as "maxrss_kib utime_us stime_us".
//
// It imports only syscall and strconv to stay that small.
package main

import (
	"strconv"
	"syscall"
)

func main() {
	args := argv()
	if len(args) < 2 {
		fail("usage: rssprobe PROGRAM [ARGS...] (rusage goes to fd 3)")
	}
	pid, err := syscall.ForkExec(args[1], args[1:], &syscall.ProcAttr{
		Env:   syscall.Environ(),
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		fail("rssprobe: starting " + args[1] + ": " + err.Error())
	}
	var ws syscall.WaitStatus
	var ru syscall.Rusage
	for {
		_, err = syscall.Wait4(pid, &ws, 0, &ru)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		fail("rssprobe: waiting for " + args[1] + ": " + err.Error())
	}
	line := strconv.FormatInt(ru.Maxrss, 10) + " " +
		strconv.FormatInt(ru.Utime.Sec*1e6+ru.Utime.Usec, 10) + " " +
		strconv.FormatInt(ru.Stime.Sec*1e6+ru.Stime.Usec, 10) + "\n"
	// Should the line not arrive, the parent reports a probe that measured
	// nothing; the exit status below must be the child's either way.
	_, _ = syscall.Write(3, []byte(line))
	switch {
	case ws.Exited():
		syscall.Exit(ws.ExitStatus())
	case ws.Signaled():
		syscall.Exit(128 + int(ws.Signal()))
	}
	syscall.Exit(1)
}

// argv reads /proc/self/cmdline, which keeps this free of package os.
func argv() []string {
	fd, err := syscall.Open("/proc/self/cmdline", syscall.O_RDONLY, 0)
	if err != nil {
		fail("rssprobe: reading the command line: " + err.Error())
	}
	var buf []byte
	chunk := make([]byte, 4096)
	for {
		n, err := syscall.Read(fd, chunk)
		if n > 0 {
			buf = append(buf, chunk[:n]...)
		}
		if n <= 0 || err != nil {
			break
		}
	}
	_ = syscall.Close(fd) // only read
	var out []string
	start := 0
	for i, b := range buf {
		if b == 0 {
			out = append(out, string(buf[start:i]))
			start = i + 1
		}
	}
	return out
}

func fail(msg string) {
	_, _ = syscall.Write(2, []byte(msg+"\n")) // exit status 127 says it failed anyway
	syscall.Exit(127)
}
