package redis

import "github.com/caddy-edge/edge/cache/store"

func softPurged(e *store.Entry) bool          { return false }
func setSoftPurged(e *store.Entry, soft bool) {}
