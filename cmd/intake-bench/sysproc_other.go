//go:build !linux

package main

import "syscall"

// childAttr: nothing special off Linux (where the memory figures, read from
// /proc, are zero anyway).
func childAttr() *syscall.SysProcAttr { return nil }
