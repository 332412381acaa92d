package geofilter

import "os"

// fileStamp identifies one version of a file, for cheap change detection
// with os.Stat: a file rewritten in place changes size or modification time,
// a file replaced by rename (as geoipupdate does) changes inode.
type fileStamp struct {
	size    int64
	modTime int64 // nanoseconds since the Unix epoch
	dev     uint64
	inode   uint64 // 0 where the platform has no inodes
}

// statFile returns the stamp of the file at path.
func statFile(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	s := fileStamp{size: fi.Size(), modTime: fi.ModTime().UnixNano()}
	s.dev, s.inode = fileID(fi)
	return s, nil
}
