package edge

import "testing"

func TestValidHost(t *testing.T) {
	for h, want := range map[string]bool{
		"a": true, "a.": true, "a.b": true, "a.b.": true, "a.b.:80": true, "a:80": true, "a:": true,
		"1.2.3.4": true, "my_host": true, "[::1]": true, "[::1]:80": true, "[2001:db8::1]:8080": true,
		"a..": false, ".a": false, ":80": false, ".:80": false, "a..b": false, "": false, ".": false,
		"a:8o": false, "a:99999": false, "a:1:2": false, "[::1]x": false, "a b": false, "[fe80::1%eth0]": false,
		"[1.2.3.4]": false, "a%41": false,
	} {
		if got := validHost(h); got != want {
			t.Errorf("validHost(%q) = %v, want %v", h, got, want)
		}
	}
}

// BenchmarkValidHost is the Host check every request pays.
func BenchmarkValidHost(b *testing.B) {
	for b.Loop() {
		validHost("bench.example")
		validHost("www.shop-example.co.uk:8080")
	}
}
