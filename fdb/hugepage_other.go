//go:build !linux

package fdb

func hugePages([]slot) {}
