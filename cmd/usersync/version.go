package main

import (
	"flag"
	"fmt"
	"io"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func printVersion(args []string, stdout io.Writer) error {
	if err := parseFlags(flag.NewFlagSet("version", flag.ContinueOnError), args, stdout, "Usage: usersync version\n"); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "usersync", currentVersion())
	return nil
}

// currentVersion is the -X version, else the module version go install
// recorded, else "dev".
func currentVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}
