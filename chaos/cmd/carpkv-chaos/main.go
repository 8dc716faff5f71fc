// Command carpkv-chaos manages what the chaos suite (package chaos, make
// chaos) leaves on the machine.
//
//	carpkv-chaos clean          remove the leftovers of chaos runs whose
//	                            process is gone (runs in progress are left alone)
//	carpkv-chaos clean --all    remove everything named carpkv-chaos-*:
//	                            containers, networks, iptables chains, images
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/carpkv/carpkv/chaos"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "clean" {
		fmt.Fprintln(os.Stderr, "usage: carpkv-chaos clean [--all]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("clean", flag.ExitOnError)
	all := fs.Bool("all", false, "also remove the resources of chaos runs still in progress")
	_ = fs.Parse(os.Args[2:])
	owners := chaos.Owners(chaos.DeadOwners)
	if *all {
		owners = chaos.AllOwners
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	removed, err := chaos.Cleanup(ctx, owners)
	for _, r := range removed {
		fmt.Println("removed", r)
	}
	if len(removed) == 0 {
		fmt.Println("nothing to remove")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "carpkv-chaos clean:", err)
		os.Exit(1)
	}
}
