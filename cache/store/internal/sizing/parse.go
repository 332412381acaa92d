package sizing

import (
	"fmt"
	"math"

	"github.com/dustin/go-humanize"
)

// MinMaxSize is the smallest byte budget a store's configuration may set:
// 1 MiB.
const MinMaxSize int64 = 1 << 20

// ParseMaxSize reads the value val of a max_size option (a size such as
// 512MiB or 2GB): at least MinMaxSize. examples are sizes that the error
// for a value that is no size suggests.
func ParseMaxSize(val, examples string) (int64, error) {
	n, err := humanize.ParseBytes(val)
	if err != nil {
		return 0, fmt.Errorf("bad max_size '%s': not a size such as %s", val, examples)
	}
	if n > math.MaxInt64 {
		return 0, fmt.Errorf("bad max_size '%s': too large", val)
	}
	if int64(n) < MinMaxSize {
		return 0, fmt.Errorf("bad max_size '%s': the minimum is 1MiB", val)
	}
	return int64(n), nil
}
