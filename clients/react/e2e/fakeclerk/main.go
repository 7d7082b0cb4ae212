// Command fakeclerk serves clerkapi/clerktest's fake Clerk Backend API on its
// own, for the browser end-to-end test of clients/react: the usersync service
// under test calls it as CLERK_API_URL (with CLERK_SECRET_KEY set to
// clerktest.SecretKey). Users not listed answer 404, so usersync answers 410.
//
//	go run ./clients/react/e2e/fakeclerk -addr 127.0.0.1:0 -users user_a,user_b
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/usersync/usersync/clerkapi/clerktest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to serve on")
	users := flag.String("users", "", "comma-separated user ids to serve (email <id>@example.com)")
	flag.Parse()
	fake, err := clerktest.Start(*addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeclerk:", err)
		os.Exit(1)
	}
	defer fake.Close()
	for _, id := range strings.Split(*users, ",") {
		if id = strings.TrimSpace(id); id != "" {
			fake.PutUser(clerktest.User(id, 1700000000000, id+"@example.com", nil))
		}
	}
	fmt.Println(fake.URL) // the one line the test waits for
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}
