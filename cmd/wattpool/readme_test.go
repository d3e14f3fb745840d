package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeFolderTableMatchesTheTree: every Go package and top-level
// folder of the repository is named in README.md's "What is here" table,
// and every folder the table names exists, so the table cannot drift from
// the tree.
func TestReadmeFolderTableMatchesTheTree(t *testing.T) {
	readme := string(repoFile(t, "README.md"))
	start := strings.Index(readme, "## What is here")
	if start < 0 {
		t.Fatal(`README.md has no "## What is here" section`)
	}
	section := readme[start:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	named := map[string]bool{}
	cell := regexp.MustCompile("`([a-z0-9_./-]+)`")
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(line[1:], "|", 2)[0]
		for _, m := range cell.FindAllStringSubmatch(first, -1) {
			named[strings.TrimSuffix(m[1], "/")] = true
		}
	}
	root := filepath.Join("..", "..")
	for dir := range named {
		if fi, err := os.Stat(filepath.Join(root, dir)); err != nil || !fi.IsDir() {
			t.Errorf("README.md's folder table names %s, which is not a folder of the repository", dir)
		}
	}
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", "github.com/wattpool/wattpool/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(abs, dir)
		if err != nil {
			t.Fatal(err)
		}
		if !named[filepath.ToSlash(rel)] {
			t.Errorf("package folder %s is missing from README.md's folder table", rel)
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && e.Name() != "bin" && !named[e.Name()] && !hasPrefixIn(named, e.Name()+"/") {
			t.Errorf("top-level folder %s is missing from README.md's folder table", e.Name())
		}
	}
}

func hasPrefixIn(set map[string]bool, prefix string) bool {
	for k := range set {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}
