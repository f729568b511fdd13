package sim

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed scenarios/*.yaml
var shipped embed.FS

// DefaultScenario is what `tapswitch sim` runs without arguments: the
// article's node, one switch with three pods and a gateway, exercising
// S1-S8 of the reference.
const DefaultScenario = "node"

// Shipped lists the scenarios built into the binary, by name.
func Shipped() []string {
	ents, _ := fs.ReadDir(shipped, "scenarios")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(out)
	return out
}

// ShippedSource returns the YAML of a shipped scenario.
func ShippedSource(name string) ([]byte, error) {
	b, err := shipped.ReadFile(path.Join("scenarios", name+".yaml"))
	if err != nil {
		return nil, fmt.Errorf("no shipped scenario %q (have %s)", name, strings.Join(Shipped(), ", "))
	}
	return b, nil
}

// LoadShipped parses a shipped scenario.
func LoadShipped(name string) (*Scenario, error) {
	b, err := ShippedSource(name)
	if err != nil {
		return nil, err
	}
	return Parse(name+".yaml", b)
}
