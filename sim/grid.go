package sim

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Param is one swept parameter: `--set KEY=V1,V2,...`. Key is as given;
// the values are YAML scalars or flow collections (`[10, 20]`), split on
// the commas outside brackets and quotes.
type Param struct {
	Key    string
	Values []string
}

// ParseSet reads one `--set KEY=V1,V2,...`. It checks only the syntax;
// whether the key exists is up to the scenario (NewSweep).
func ParseSet(s string) (Param, error) {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return Param{}, fmt.Errorf("--set %q: want KEY=VALUE[,VALUE...]", s)
	}
	for _, seg := range strings.Split(k, ".") {
		if seg == "" {
			return Param{}, fmt.Errorf("--set %s: empty segment in the key", k)
		}
	}
	vals, err := splitValues(v)
	if err != nil {
		return Param{}, fmt.Errorf("--set %s: %v", k, err)
	}
	seen := map[string]bool{}
	for _, x := range vals {
		if x == "" {
			return Param{}, fmt.Errorf("--set %s: empty value in %q", k, v)
		}
		if seen[x] {
			return Param{}, fmt.Errorf("--set %s: value %q given twice", k, x)
		}
		seen[x] = true
	}
	return Param{Key: k, Values: vals}, nil
}

// splitValues splits on commas that are not inside [], {} or quotes.
func splitValues(s string) ([]string, error) {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			if depth == 0 {
				return nil, fmt.Errorf("unbalanced %q in %q", c, s)
			}
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if quote != 0 || depth != 0 {
		return nil, fmt.Errorf("unclosed quote or bracket in %q", s)
	}
	return append(out, strings.TrimSpace(s[start:])), nil
}

// MaxSeeds bounds a seed list, so that a typo such as 1-1000000000 is an
// error rather than a run that never ends.
const MaxSeeds = 1_000_000

// ParseSeeds reads a seed list: "7", "1-50", "1-10,20,30-32". Seeds are
// whole numbers; each may appear once.
func ParseSeeds(s string) ([]uint64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("--seeds: empty")
	}
	var out []uint64
	seen := map[uint64]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi := part, part
		if a, b, ok := strings.Cut(part, "-"); ok {
			lo, hi = a, b
		}
		l, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 64)
		h, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("--seeds %q: %q is not a seed or a range of seeds (N or N-M)", s, part)
		}
		if h < l {
			return nil, fmt.Errorf("--seeds %q: range %q runs backwards", s, part)
		}
		if h-l >= MaxSeeds || len(out)+int(h-l+1) > MaxSeeds {
			return nil, fmt.Errorf("--seeds %q: more than %d seeds", s, MaxSeeds)
		}
		for x := l; ; x++ {
			if seen[x] {
				return nil, fmt.Errorf("--seeds %q: seed %d given twice", s, x)
			}
			seen[x] = true
			out = append(out, x)
			if x == h {
				break
			}
		}
	}
	return out, nil
}

// topKeys are the scenario's top-level keys: a --set key that starts with
// one is a full path.
var topKeys = []string{"name", "description", "seed", "run", "switches", "hosts", "links", "timeline", "assert"}

// switchKeys are the keys of a switch: `--set table_limit=...` sets it on
// every switch.
var switchKeys = []string{"ageing", "table_limit", "port_limit", "policy", "arp", "mtu"}

// keyAliases are the daemon configuration's names for switch keys, so
// that `--set fdb.limit=...` means what it means in config.yaml.
var keyAliases = map[string]string{
	"fdb.limit":      "table_limit",
	"fdb.port_limit": "port_limit",
	"fdb.policy":     "policy",
	"fdb.ageing":     "ageing",
}

// resolveKey turns a --set key into a full path in the scenario tree:
// switches.*.table_limit for the short forms. A "*" segment on a list
// stands for every item.
func resolveKey(root *yaml.Node, key string) ([]string, error) {
	if a, ok := keyAliases[key]; ok {
		key = a
	}
	for k, a := range keyAliases {
		if p, ok := strings.CutPrefix(key, k+"."); ok {
			key = a + "." + p
		}
	}
	segs := strings.Split(key, ".")
	switch {
	case segs[0] == "seed":
		return nil, fmt.Errorf("the seed is swept with --seeds, not --set")
	case contains(topKeys, segs[0]):
		return segs, nil
	case contains(switchKeys, segs[0]):
		return append([]string{"switches", "*"}, segs...), nil
	}
	// NAME.key: a switch, host or link by name.
	var found []string
	for _, list := range []string{"switches", "hosts", "links"} {
		l := mapValue(root, list)
		if l == nil || l.Kind != yaml.SequenceNode {
			continue
		}
		for j := len(segs) - 1; j >= 1; j-- {
			if itemNamed(l, strings.Join(segs[:j], ".")) != nil {
				found = append(found, list)
				break
			}
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("unknown key: not a scenario key (%s), a switch key (%s), %s, or the name of a switch, host or link followed by its key",
			strings.Join(topKeys, ", "), strings.Join(switchKeys, ", "), strings.Join(sortedKeys(keyAliases), ", "))
	case 1:
		return append([]string{found[0]}, segs...), nil
	}
	return nil, fmt.Errorf("ambiguous: %q names something in %s; use the full path (%s.NAME...)", segs[0], strings.Join(found, " and "), found[0])
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// itemNamed is the list item (a mapping) whose name is name, or nil. A
// link without a name is called "a--b", as the simulator calls it.
func itemNamed(l *yaml.Node, name string) *yaml.Node {
	for _, it := range l.Content {
		v := mapValue(it, "name")
		if v == nil {
			a, b := mapValue(it, "a"), mapValue(it, "b")
			if a != nil && b != nil && a.Kind == yaml.ScalarNode && b.Kind == yaml.ScalarNode && a.Value+"--"+b.Value == name {
				return it
			}
			continue
		}
		if v.Kind == yaml.ScalarNode && v.Value == name {
			return it
		}
	}
	return nil
}

// setPath sets path in the tree under n to val (a fresh node per place),
// creating missing mapping keys on the way. It returns how many places it
// set; a path that matches nothing is an error.
func setPath(n *yaml.Node, path []string, val *yaml.Node, done string) (int, error) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	seg := path[0]
	here := strings.TrimPrefix(done+"."+seg, ".")
	switch n.Kind {
	case yaml.MappingNode:
		v := mapValue(n, seg)
		if len(path) == 1 {
			c := cloneNode(val)
			if v == nil {
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: seg, Line: n.Line}, c)
			} else {
				c.Line = v.Line
				*v = *c
			}
			return 1, nil
		}
		if v == nil {
			if _, err := strconv.Atoi(path[1]); err == nil || path[1] == "*" || contains([]string{"switches", "hosts", "links", "timeline", "assert", "ports", "interfaces"}, seg) {
				return 0, fmt.Errorf("%s: not in the scenario", here)
			}
			v = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: seg, Line: n.Line}, v)
		}
		return setPath(v, path[1:], val, here)
	case yaml.SequenceNode:
		var items []*yaml.Node
		rest := path[1:]
		switch {
		case seg == "*":
			items = n.Content
		default:
			if i, err := strconv.Atoi(seg); err == nil {
				if i < 0 || i >= len(n.Content) {
					return 0, fmt.Errorf("%s: index out of range (the list has %d items)", here, len(n.Content))
				}
				items = []*yaml.Node{n.Content[i]}
				break
			}
			// Names may contain dots: take the longest run of segments
			// that names an item.
			for j := len(path); j >= 1; j-- {
				if it := itemNamed(n, strings.Join(path[:j], ".")); it != nil {
					items, rest = []*yaml.Node{it}, path[j:]
					here = strings.TrimPrefix(done+"."+strings.Join(path[:j], "."), ".")
					break
				}
			}
			if items == nil {
				return 0, fmt.Errorf("%s: no item of that name or index", here)
			}
		}
		if len(rest) == 0 {
			return 0, fmt.Errorf("%s: a list item, not a key; name one of its keys", here)
		}
		total := 0
		for _, it := range items {
			k, err := setPath(it, rest, val, here)
			if err != nil {
				return 0, err
			}
			total += k
		}
		if total == 0 {
			return 0, fmt.Errorf("%s: matches nothing (an empty list)", here)
		}
		return total, nil
	}
	return 0, fmt.Errorf("%s: %s is a value, not a mapping or list", here, strings.TrimPrefix(done, "."))
}

func cloneNode(n *yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	c := *n
	if n.Content != nil {
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, x := range n.Content {
			c.Content[i] = cloneNode(x)
		}
	}
	return &c
}

// valueNode parses one --set value as YAML: a scalar, or a flow list or
// mapping.
func valueNode(v string) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(v), &doc); err != nil {
		return nil, fmt.Errorf("value %q: %s", v, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("value %q: want one YAML value", v)
	}
	n := doc.Content[0]
	zeroLines(n)
	return n, nil
}

func zeroLines(n *yaml.Node) {
	n.Line, n.Column = 0, 0
	for _, c := range n.Content {
		zeroLines(c)
	}
}
