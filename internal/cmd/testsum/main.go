// Command testsum reads `go test -json` on stdin and prints what plain
// `go test` prints (one line per package, the output of failed tests),
// then a closing count: "N passed, N failed, N skipped". It exits 1 when a
// test or a package failed, or when no test ran.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

func main() {
	os.Exit(run(os.Stdin, os.Stdout))
}

// failure is a failed test and its output, kept when it failed: the same
// test may run again later in the stream (the suite runs some packages
// twice), and that run must not take the first one's output away.
type failure struct {
	key, output string
}

func run(in io.Reader, w io.Writer) int {
	var passed, failed, skipped int
	pkgFailed := false
	outputs := map[string][]string{} // package/test -> output lines of its current run
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var failures []failure
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			// Build errors and the like are not JSON: show them as they are.
			fmt.Fprintln(w, string(line))
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			if e.Test == "" {
				out := strings.TrimRight(e.Output, "\n")
				if strings.HasPrefix(out, "ok ") || strings.HasPrefix(out, "ok\t") || strings.HasPrefix(out, "FAIL") ||
					strings.HasPrefix(out, "?") || strings.Contains(out, "[build failed]") || strings.HasPrefix(out, "panic:") {
					fmt.Fprintln(w, out)
				} else {
					outputs[key] = append(outputs[key], e.Output)
				}
			} else {
				outputs[key] = append(outputs[key], e.Output)
			}
		case "pass":
			if e.Test != "" {
				passed++
			}
			delete(outputs, key)
		case "skip":
			if e.Test != "" {
				skipped++
			}
			delete(outputs, key)
		case "fail":
			if e.Test != "" {
				failed++
				failures = append(failures, failure{key: key, output: strings.Join(outputs[key], "")})
			} else {
				pkgFailed = true
				if lines := outputs[key]; len(lines) > 0 {
					fmt.Fprint(w, strings.Join(lines, ""))
				}
			}
			delete(outputs, key)
		}
	}
	sort.SliceStable(failures, func(i, j int) bool { return failures[i].key < failures[j].key })
	for _, f := range failures {
		fmt.Fprintf(w, "\n--- FAIL: %s\n%s", f.key, f.output)
	}
	fmt.Fprintf(w, "\n%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if failed > 0 || pkgFailed || passed == 0 {
		return 1
	}
	return 0
}
