//go:build !linux

package main

import "syscall"

// childProcAttr puts a child in its own process group. Outside Linux there
// is no parent-death signal: if dev is killed with SIGKILL, stop the
// children yourself.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
