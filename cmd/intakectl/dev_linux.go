package main

import "syscall"

// childProcAttr puts a child in its own process group and has the kernel
// send it SIGTERM when dev dies, even by SIGKILL, so no orphan keeps the
// ports.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
