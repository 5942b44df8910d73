module github.com/weir-cdn/weir

go 1.26.8

require (
	github.com/google/go-cmp v0.7.0
	github.com/maypok86/otter/v2 v2.4.0
	go.uber.org/goleak v1.3.0
	go.yaml.in/yaml/v3 v3.0.6
	pgregory.net/rapid v1.3.0
)

require (
	golang.org/x/net v0.62.0
	golang.org/x/text v0.43.0 // indirect
)
