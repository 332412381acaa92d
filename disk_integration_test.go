package edge_test

import "testing"

// BenchmarkDiskLargeBodyRSS sends a 1 GiB response through a real Caddy
// with the disk store: once as a miss (streamed to the client and into the
// entry file) and once as a hit (sent from the file), and reports how much
// the process's RSS grew above what it was before (rss-growth-MiB, the
// largest of samples every 20 ms; the page cache is not in the RSS):
//
//	go test -run '^$' -bench DiskLargeBodyRSS -benchtime 1x .
func BenchmarkDiskLargeBodyRSS(b *testing.B) {
	largeBodyRSS(b, `store disk {
			path `+b.TempDir()+`
			max_size 16GiB
		}`)
}
