package geodb

import "os"

// FileStamp identifies one version of a file, for cheap change detection
// with os.Stat: a file rewritten in place changes size or modification time,
// a file replaced by rename (as geoipupdate does) changes inode.
type FileStamp struct {
	Size    int64
	ModTime int64 // nanoseconds since the Unix epoch
	Dev     uint64
	Inode   uint64 // 0 where the platform has no inodes
}

// StampOf returns the stamp of a file from its FileInfo.
func StampOf(fi os.FileInfo) FileStamp {
	s := FileStamp{Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
	s.Dev, s.Inode = fileID(fi)
	return s
}

// Stat returns the stamp of the file at path.
func Stat(path string) (FileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return FileStamp{}, err
	}
	return StampOf(fi), nil
}
