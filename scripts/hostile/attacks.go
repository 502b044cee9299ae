package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// slowBodies: clients that announce a body and send it a byte a second.
// The server must cut each at its read timeout.
func slowBodies(c config, rep *report) {
	const clients, announced = 20, 1 << 20
	var wg sync.WaitGroup
	var cut, wrong atomic.Int64
	var slowest atomic.Int64
	for range clients {
		wg.Go(func() {
			conn, err := net.DialTimeout("tcp", c.http, 5*time.Second)
			if err != nil {
				wrong.Add(1)
				return
			}
			defer conn.Close()
			start := time.Now()
			limit := c.readTimeout + 10*time.Second
			_ = conn.SetDeadline(start.Add(limit))
			fmt.Fprintf(conn, "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", c.http, announced)
			answered := make(chan int, 1)
			go func() {
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					answered <- 0 // closed without an answer
					return
				}
				resp.Body.Close()
				answered <- resp.StatusCode
			}()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for sent := 0; sent < announced; sent++ {
				select {
				case status := <-answered:
					took := time.Since(start)
					if took > time.Duration(slowest.Load()) {
						slowest.Store(int64(took))
					}
					if status == http.StatusRequestTimeout && took < limit {
						cut.Add(1)
					} else {
						wrong.Add(1)
					}
					return
				case <-tick.C:
					if _, err := conn.Write([]byte(" ")); err != nil {
						wrong.Add(1)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	rep.add(cut.Load() == clients, "slow bodies (1 byte/s, %d clients): %d cut with 408, slowest after %v (read timeout %v), %d otherwise",
		clients, cut.Load(), time.Duration(slowest.Load()).Round(100*time.Millisecond), c.readTimeout, wrong.Load())
}

// announcedNoBody: clients that announce the largest body allowed, or far
// more, and send none of it.
func announcedNoBody(c config, rep *report) {
	const clients = 30
	var wg sync.WaitGroup
	var atLimit, over [clients]int
	var overTook [clients]time.Duration
	for i := range clients {
		wg.Go(func() {
			atLimit[i], _ = headOnly(c, 64<<20, c.readTimeout+10*time.Second)
		})
		wg.Go(func() {
			start := time.Now()
			over[i], _ = headOnly(c, 1<<40, 10*time.Second)
			overTook[i] = time.Since(start)
		})
	}
	wg.Wait()
	count := func(s []int, want int) (n int) {
		for _, v := range s {
			if v == want {
				n++
			}
		}
		return n
	}
	slowest := time.Duration(0)
	for _, d := range overTook {
		slowest = max(slowest, d)
	}
	rep.add(count(atLimit[:], http.StatusRequestTimeout) == clients, "64 MiB announced, no body (%d clients): %d answered 408 at the read timeout", clients, count(atLimit[:], http.StatusRequestTimeout))
	rep.add(count(over[:], http.StatusRequestEntityTooLarge) == clients && slowest < 2*time.Second,
		"1 TiB announced, no body (%d clients): %d answered 413 at once (slowest %v)", clients, count(over[:], http.StatusRequestEntityTooLarge), slowest.Round(time.Millisecond))
}

// headOnly sends an infer request's headers announcing length bytes and
// waits up to wait for the answer's status (0: none).
func headOnly(c config, length int64, wait time.Duration) (int, string) {
	conn, err := net.DialTimeout("tcp", c.http, 5*time.Second)
	if err != nil {
		return 0, err.Error()
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	fmt.Fprintf(conn, "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", c.http, length)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	return resp.StatusCode, string(b)
}

// idleConnections opens c.idleConns connections that send nothing, and
// counts those the server closes within its header timeout (10s by
// default) and some slack.
func idleConnections(c config, rep *report) {
	const headerTimeout, slack = 10 * time.Second, 10 * time.Second
	var wg sync.WaitGroup
	var opened, failed, closed atomic.Int64
	dials := make(chan struct{}, 64) // dials at once
	start := time.Now()
	for range c.idleConns {
		dials <- struct{}{}
		wg.Go(func() {
			conn, err := net.DialTimeout("tcp", c.http, 5*time.Second)
			<-dials
			if err != nil {
				failed.Add(1)
				return
			}
			defer conn.Close()
			opened.Add(1)
			_ = conn.SetReadDeadline(start.Add(headerTimeout + slack))
			if _, err := conn.Read(make([]byte, 1)); err != nil {
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					closed.Add(1) // the server closed it
				}
			}
		})
	}
	wg.Wait()
	rep.add(opened.Load() > 0 && closed.Load() == opened.Load(), "idle connections: %d opened (%d failed to open), %d closed by the server within %v",
		opened.Load(), failed.Load(), closed.Load(), headerTimeout+slack)
}

// madeUpNames asks for c.names models that do not exist.
func madeUpNames(c config, client *http.Client, rep *report) {
	var wg sync.WaitGroup
	var notFound, other atomic.Int64
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				resp, err := client.Post(fmt.Sprintf("http://%s/v2/models/made-up-%d/infer", c.http, i), "application/json", strings.NewReader(string(mlpBody)))
				if err != nil {
					other.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusNotFound {
					notFound.Add(1)
				} else {
					other.Add(1)
				}
			}
		})
	}
	for i := range c.names {
		next <- i
	}
	close(next)
	wg.Wait()
	rep.add(notFound.Load() == int64(c.names), "made-up model names: %d asked for, %d answered 404, %d otherwise", c.names, notFound.Load(), other.Load())
}

// decoderAttacks sends bodies whose declared sizes or nesting a decoder
// must refuse without acting on them: each must get 400, and the server
// must live through it.
func decoderAttacks(c config, client *http.Client, rep *report) {
	nested := `{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","data":` + strings.Repeat("[", 100_000) + "1" + strings.Repeat("]", 100_000) + `}]}`
	for _, a := range []struct{ name, body string }{
		{"enormous declared shape [2147483648]", `{"inputs":[{"name":"image","shape":[2147483648],"datatype":"FP32","data":[1]}]}`},
		{"enormous declared shape [1,2147483648]", `{"inputs":[{"name":"image","shape":[1,2147483648],"datatype":"FP32","data":[1]}]}`},
		{"shape product over int64 [2^32,2^32,2^32]", `{"inputs":[{"name":"image","shape":[4294967296,4294967296,4294967296],"datatype":"FP32","data":[1]}]}`},
		{"shape product over int64 [2^63-1,2^63-1]", `{"inputs":[{"name":"image","shape":[9223372036854775807,9223372036854775807],"datatype":"FP32","data":[1]}]}`},
		{"JSON nested 100,000 deep", nested},
	} {
		const tries = 5
		statuses := map[int]int{}
		var sample string
		for range tries {
			status, body := post(c.http, "/v2/models/mlp/infer", []byte(a.body), 30*time.Second)
			statuses[status]++
			if sample == "" || status != http.StatusBadRequest {
				sample = body
			}
			if status == 0 && !alive(client, c.http) {
				break
			}
		}
		up := alive(client, c.http)
		rep.add(statuses[http.StatusBadRequest] == tries && up, "%s: statuses %v of %d (0: no answer); server alive: %v; answer: %.120s",
			a.name, statuses, tries, up, strings.TrimSpace(sample))
		if !up {
			rep.add(false, "the remaining decoder attacks were not sent: the server died")
			return
		}
	}
}
