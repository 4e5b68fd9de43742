package store

import (
	"fmt"
	"io/fs"
)

func fsSub(f fs.FS, dir string) (fs.FS, error) {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		return nil, fmt.Errorf("opening embedded %s: %w", dir, err)
	}
	return sub, nil
}
