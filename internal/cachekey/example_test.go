package cachekey_test

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/weir-cdn/weir/internal/cachekey"
)

func ExampleNormalizer_AppendPrimary() {
	n, err := cachekey.Compile(cachekey.Rules{DropParams: []string{"utm_*", "fbclid"}})
	if err != nil {
		panic(err)
	}
	var buf []byte
	for _, q := range []string{"utm_source=news&id=1&lang=en", "lang=en&id=1&fbclid=xyz"} {
		buf = n.AppendPrimary(buf[:0], "HTTPS", "Shop.Example.com:443", "/caf%c3%a9/%7eitem", q)
		fmt.Println(string(buf))
	}
	// Output:
	// https://shop.example.com/caf%C3%A9/~item?id=1&lang=en
	// https://shop.example.com/caf%C3%A9/~item?id=1&lang=en
}

func ExampleNormalizer_ForwardQuery() {
	n, err := cachekey.Compile(cachekey.Rules{DropParams: []string{"utm_*"}})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%q\n", n.ForwardQuery("b=2&utm_medium=mail&a=1"))
	fmt.Printf("%q\n", n.ForwardQuery("b=2&a=1"))
	// Output:
	// "b=2&a=1"
	// "b=2&a=1"
}

func ExampleNormalizer_AppendExtra() {
	n, err := cachekey.Compile(cachekey.Rules{Headers: []string{"X-Device"}, Cookies: []string{"lang"}})
	if err != nil {
		panic(err)
	}
	h := http.Header{"X-Device": {"mobile"}, "Cookie": {"sid=42; lang=fr"}}
	extra := n.AppendExtra(nil, h)
	fmt.Printf("%q\n", extra)
	fmt.Printf("%q\n", n.AppendExtra(nil, http.Header{}))
	// Output:
	// "h:x-device=mobile\x00c:lang=fr\x00"
	// "h:x-device\x01\x00c:lang\x01\x00"
}

func ExampleRules_Validate() {
	r := cachekey.Rules{
		DropParams: []string{"utm_*", "[a-z]id"},
		Headers:    []string{"X-Device", "x-device"},
	}
	for _, line := range strings.Split(r.Validate().Error(), "\n") {
		fmt.Println(line)
	}
	// Output:
	// drop_params[1]: "[a-z]id" uses '[', which patterns do not support: use only * (any run of characters) and ? (one character)
	// headers[1]: "x-device" repeats headers[0] (header names are case-insensitive); remove one of them
}
