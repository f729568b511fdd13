// Command pause is the real-runtime test's sandbox image: it does what
// Kubernetes' pause container does for a pod sandbox, which is to hold its
// namespaces open, sleeping until SIGTERM or SIGINT, and exit 0 then. The
// test builds it statically and packs it as an image (no registry needed).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
