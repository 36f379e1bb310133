// Command chart-docs writes the values table of a Helm chart's README.md from the comments in its values.yaml.
//
// Every key of values.yaml needs a comment on the lines above it (a leading "-- " is dropped). A key whose
// value is a mapping is a section when any key below it has a comment, and each child gets its own row; when none
// of its children has a comment, the whole mapping is one value and one row. The table replaces what stands
// between the markers <!-- values:start --> and <!-- values:end --> in README.md.
//
//	go run ./hack/chart-docs charts/cardplane          # rewrite charts/cardplane/README.md
//	go run ./hack/chart-docs -check charts/cardplane   # fail when README.md is stale
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

const (
	startMarker = "<!-- values:start -->"
	endMarker   = "<!-- values:end -->"
)

type row struct {
	key, typ, def, doc string
}

func main() {
	check := flag.Bool("check", false, "do not write; fail when README.md differs from what would be written")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: chart-docs [-check] CHART_DIR")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *check); err != nil {
		fmt.Fprintln(os.Stderr, "chart-docs:", err)
		os.Exit(1)
	}
}

func run(dir string, check bool) error {
	values, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		return err
	}
	rows, err := rowsOf(values)
	if err != nil {
		return err
	}
	readmePath := filepath.Join(dir, "README.md")
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		return err
	}
	start := bytes.Index(readme, []byte(startMarker))
	end := bytes.Index(readme, []byte(endMarker))
	if start < 0 || end < start {
		return fmt.Errorf("%s has no %s ... %s markers", readmePath, startMarker, endMarker)
	}
	var out bytes.Buffer
	out.Write(readme[:start+len(startMarker)])
	out.WriteString("\n" + table(rows))
	out.Write(readme[end:])
	if bytes.Equal(out.Bytes(), readme) {
		return nil
	}
	if check {
		return fmt.Errorf("%s is stale: run `make chart-docs`", readmePath)
	}
	return os.WriteFile(readmePath, out.Bytes(), 0o644)
}

// rowsOf walks values.yaml and returns one row per documented value, in file order.
func rowsOf(src []byte) ([]row, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("values.yaml is not a mapping")
	}
	var rows []row
	var undocumented []string
	var walk func(prefix string, m *yaml.Node, first bool)
	walk = func(prefix string, m *yaml.Node, first bool) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			key := prefix + k.Value
			comment := k.HeadComment
			if first && i == 0 {
				// The file's own header comment sits on the document; only the block right above the key counts.
				comment = lastBlock(comment)
			}
			if v.Kind == yaml.MappingNode && len(v.Content) > 0 && anyChildDocumented(v) {
				walk(key+".", v, false)
				continue
			}
			text := commentText(comment)
			if text == "" {
				undocumented = append(undocumented, key)
				continue
			}
			rows = append(rows, row{key: key, typ: typeOf(v), def: defaultOf(v), doc: text})
		}
	}
	walk("", doc.Content[0], true)
	if len(undocumented) > 0 {
		return nil, fmt.Errorf("values without a comment: %s", strings.Join(undocumented, ", "))
	}
	return rows, nil
}

func anyChildDocumented(m *yaml.Node) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if strings.TrimSpace(m.Content[i].HeadComment) != "" {
			return true
		}
		if v := m.Content[i+1]; v.Kind == yaml.MappingNode && anyChildDocumented(v) {
			return true
		}
	}
	return false
}

// lastBlock keeps the last paragraph of a comment (the lines after its last blank line).
func lastBlock(c string) string {
	c = strings.TrimRight(c, "\n")
	if i := strings.LastIndex(c, "\n\n"); i >= 0 {
		return c[i+2:]
	}
	return c
}

func commentText(c string) string {
	var words []string
	for _, line := range strings.Split(lastBlock(c), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
		line = strings.TrimPrefix(line, "-- ")
		if line != "" {
			words = append(words, line)
		}
	}
	return strings.Join(words, " ")
}

func typeOf(v *yaml.Node) string {
	switch v.Kind {
	case yaml.MappingNode:
		return "object"
	case yaml.SequenceNode:
		return "list"
	}
	switch v.Tag {
	case "!!int":
		return "int"
	case "!!bool":
		return "bool"
	case "!!float":
		return "float"
	case "!!null":
		return "null"
	}
	return "string"
}

// defaultOf renders a value as compact JSON.
func defaultOf(v *yaml.Node) string {
	var x any
	if err := v.Decode(&x); err != nil {
		return "?"
	}
	b, err := json.Marshal(x)
	if err != nil {
		return "?"
	}
	return string(b)
}

func table(rows []row) string {
	var b strings.Builder
	b.WriteString("| Key | Type | Default | Description |\n|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s |\n", r.key, r.typ, strings.ReplaceAll(r.def, "|", "\\|"), strings.ReplaceAll(r.doc, "|", "\\|"))
	}
	return b.String()
}
