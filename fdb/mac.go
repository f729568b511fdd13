package fdb

import (
	"fmt"
	"net"
)

// MAC is a 48-bit Ethernet address held by value, so events and entries carry
// it without allocating.
type MAC [6]byte

// MACFrom copies the first six bytes of b. b must hold at least six bytes.
func MACFrom(b []byte) MAC { return MAC{b[0], b[1], b[2], b[3], b[4], b[5]} }

// ParseMAC accepts the forms net.ParseMAC accepts, limited to 48 bits.
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(s)
	if err != nil {
		return MAC{}, fmt.Errorf("mac %q: %w", s, err)
	}
	if len(hw) != 6 {
		return MAC{}, fmt.Errorf("mac %q: want a 48-bit address", s)
	}
	return MACFrom(hw), nil
}

func (m MAC) String() string {
	const hex = "0123456789abcdef"
	var b [17]byte
	for i, v := range m {
		if i > 0 {
			b[i*3-1] = ':'
		}
		b[i*3] = hex[v>>4]
		b[i*3+1] = hex[v&0xf]
	}
	return string(b[:])
}

// HardwareAddr returns a fresh net.HardwareAddr.
func (m MAC) HardwareAddr() net.HardwareAddr { return append(net.HardwareAddr(nil), m[:]...) }

// MarshalText writes the colon form, so JSON shows "aa:bb:..".
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses the colon form.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// IsMulticast is true for group addresses, broadcast included.
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// IsZero is true for 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }
