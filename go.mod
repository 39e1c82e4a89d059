module github.com/fhirgw/fhirgw

go 1.26

require (
	github.com/go-json-experiment/json v1.27.2
	github.com/google/uuid v1.6.0
	go.uber.org/zap v1.28.0
)

require (
	go.uber.org/goleak v1.3.0
	go.uber.org/multierr v1.10.0 // indirect
)
