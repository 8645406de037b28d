// Command ingestor loads and cleans KuaiRec (or generates a synthetic KuaiRec),
// builds features, trains the offline two-tower model and publishes it.
//
// Subcommands (each in its own file, registered in the commands table):
//
//	ingestor synth --out DIR --scale tiny|full --seed N [drift flags]
//	ingestor stats --data DIR
//	ingestor train --data DIR [--cut TIME] [--no-publish] [--model-topic T] --report FILE
//	ingestor restore [--follow] [--model-topic T]
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/streamrec/streamrec/internal/config"
)

// command is one ingestor subcommand. run receives the arguments after the
// subcommand's name and parses them with config.Parse.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

// commands is filled by each subcommand file's init.
var commands = map[string]command{}

func main() { config.Main("ingestor", run) }

func run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return config.Usagef("missing subcommand")
		}
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		usage()
		return config.Usagef("unknown subcommand %q", args[0])
	}
	return c.run(ctx, args[1:])
}

func usage() {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage: ingestor <subcommand> [flags]\n\nsubcommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-8s %s\n", n, commands[n].summary)
	}
	b.WriteString("\nRun 'ingestor <subcommand> -h' for its flags.\n")
	fmt.Fprint(os.Stderr, b.String())
}
