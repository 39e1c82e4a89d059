package gateway

import (
	"bytes"
	"encoding/json"
)

// encode marshals the gateway's own resource types compactly, without HTML
// escaping. They hold only strings, numbers and slices, so it cannot fail.
func encode(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("gateway: encoding a built-in resource: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
