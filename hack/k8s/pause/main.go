// Command pause is the pod sandbox ("infra") container of the test node in
// hack/k8s: it holds the pod's namespaces open until it is told to stop,
// and reaps zombies in case it is the pod's PID 1. The node cannot pull
// registry.k8s.io/pause, so the image is built from this program.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
