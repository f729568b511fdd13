package fdb

import "unsafe"

// slotsOf is lines seen slot by slot: the same memory, so that writers and
// probes past a home line index slots directly while lookups index lines.
func slotsOf(lines []line) []slot {
	return unsafe.Slice(&lines[0][0], len(lines)*lineSlots)
}
