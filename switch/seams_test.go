package vswitch_test

import (
	vswitch "github.com/tapswitch/tapswitch/switch"
	"github.com/tapswitch/tapswitch/switch/memport"
)

// The in-memory ports are switch ports. (memport cannot say so itself: the
// switch's internal tests import it.)
var (
	_ vswitch.Port = (*memport.Port)(nil)
	_ vswitch.Port = (*memport.Sink)(nil)
)
