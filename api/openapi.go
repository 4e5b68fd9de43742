package api

import (
	_ "embed"
	"net/http"
)

// openapiYAML documents every route New registers; the package's tests check
// the two against each other and the answers against its schemas.
//
//go:embed openapi.yaml
var openapiYAML []byte

// serveOpenAPI answers GET /v1/openapi.yaml, without authentication: the
// document is public, as the API's shape is no secret.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openapiYAML)
}
