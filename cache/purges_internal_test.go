package cache

import "testing"

func TestPurgeLog(t *testing.T) {
	for _, strict := range []bool{true, false} {
		l := &purgeLog{strict: strict}
		since := l.since()
		if l.purgedSince(since, "k", "k") {
			t.Fatal("purged with no purge")
		}
		l.record(purgeRecord{key: "other"})
		l.record(purgeRecord{prefix: "https://a/img/"})
		l.record(purgeRecord{tag: "t1"})
		for _, tt := range []struct {
			pkey, key string
			tags      []string
			want      bool
		}{
			{"k", "k", nil, false},
			{"other", "other\x00v", nil, true},
			{"https://a/img/x", "https://a/img/x", nil, true},
			{"k", "k", []string{"t0", "t1"}, true},
			// A rewritten request's key: the URL's, NUL, then the rewrite.
			{"other\x00>/index.php", "other\x00>/index.php", nil, true},
			{"otherwise\x00>/index.php", "otherwise\x00>/index.php", nil, false},
		} {
			if got := l.purgedSince(since, tt.pkey, tt.key, tt.tags); got != tt.want {
				t.Errorf("strict %v: purgedSince(%q, %q, %q) = %v, want %v", strict, tt.pkey, tt.key, tt.tags, got, tt.want)
			}
		}
		if l.purgedSince(l.since(), "other", "other") {
			t.Error("a fetch that began after the purge counts as purged")
		}

		// More purges than are kept while a fetch runs: the admin API's
		// count it as purged; unsafe requests' (which any client sends,
		// as many as it likes) only by those kept.
		since = l.since()
		l.record(purgeRecord{key: "k"})
		for range maxPurgeRecords + 10 {
			l.record(purgeRecord{key: "flood"})
		}
		if got := l.purgedSince(since, "unrelated", "unrelated"); got != strict {
			t.Errorf("strict %v: an unrelated fetch older than the records kept counts as purged: %v", strict, got)
		}
		if got := l.purgedSince(since, "flood", "flood"); !got {
			t.Errorf("strict %v: a fetch purged by a record kept is not purged", strict)
		}
	}
}
