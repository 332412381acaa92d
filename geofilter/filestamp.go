package geofilter

import (
	"io"
	"os"
)

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

// sameFile tells whether a and b are versions of one file (the same inode):
// the second was written in place over the first. It is false where the
// platform has no inodes.
func sameFile(a, b fileStamp) bool {
	return a.inode != 0 && a.inode == b.inode && a.dev == b.dev
}

// pinFile opens the file at path, whose stamp is st, and returns it open:
// while it is open its inode cannot be given to another file, so that a
// file later found at path with the same inode is this one written in
// place, never a new file that reused the number (as ext4 does with the
// inode of a file just replaced). It returns errFileChanging if the file
// opened is not the one of st (replaced meanwhile), and nil, nil where the
// platform has no inodes (a file held open there could not be replaced).
func pinFile(path string, st fileStamp) (io.Closer, error) {
	if st.inode == 0 {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if dev, ino := fileID(fi); dev != st.dev || ino != st.inode {
		f.Close()
		return nil, errFileChanging
	}
	return f, nil
}

// unpin closes pin, if any.
func unpin(pin io.Closer) {
	if pin != nil {
		_ = pin.Close()
	}
}
