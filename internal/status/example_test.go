package status_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/status"
)

// A client reads a node's documents as the types the node serves, and
// says what failed when a call does.
func ExampleClient() {
	// A node's admin API; a real one is at its admin_listen address.
	api := httptest.NewServer(admin.NewHandler(admin.Options{
		Ready:  func() error { return errors.New("not joined to the cluster yet") },
		Status: func() any { return status.Node{Node: "edge-1", Edge: "10.0.0.1:80"} },
	}))
	defer api.Close()

	c, err := status.NewClient(api.URL, status.ClientOptions{Timeout: 5 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseIdleConnections()
	ctx := context.Background()
	st, err := c.Status(ctx)
	fmt.Println(st.Node, st.Edge, err)

	err = c.Readyz(ctx)
	var e *status.Error
	if errors.As(err, &e) {
		fmt.Println(e.StatusCode, e.Message)
	}
	// Output:
	// edge-1 10.0.0.1:80 <nil>
	// 503 not ready: not joined to the cluster yet
}
