package listen_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/weir-cdn/weir/internal/h1"
	"github.com/weir-cdn/weir/internal/listen"
)

// A node's listeners are one list: bound in order, served together,
// drained in order.
func Example() {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
	g, err := listen.Open(
		listen.Spec{Name: "edge", Addr: "127.0.0.1:0", Setting: "listen or --listen",
			Server: &h1.Server{Handler: hello, Logger: slog.New(slog.DiscardHandler)}},
		listen.Spec{Name: "admin", Addr: "127.0.0.1:0", Setting: "admin_listen or --admin-listen",
			Server: listen.NewHTTP(&http.Server{Handler: http.NotFoundHandler()})},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	g.Serve()

	tr := &http.Transport{}
	resp, err := (&http.Client{Transport: tr}).Get("http://" + g.Addr("edge").String() + "/")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tr.CloseIdleConnections()
	fmt.Print(string(body))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(g.Shutdown(ctx))
	// Output:
	// hello
	// <nil>
}
