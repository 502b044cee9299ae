// Command loopback-server is the trivial HTTP server scripts/bench-loadgen.sh
// points every load generator at: it answers every request 200 "ok", so the
// generators, not the server, are what the comparison measures.
package main

import (
	"flag"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18900", "loopback address to listen on")
	flag.Parse()
	ok := []byte("ok")
	log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(ok)
	})))
}
