package keep

import (
	"sync"
	"testing"
)

type val struct{ n int }

func slots(n int) []*Slot[val] {
	s := make([]*Slot[val], n)
	for i := range s {
		s[i] = new(Slot[val])
	}
	return s
}

// The kept values' costs never exceed the bound, and a value over the
// bound of one is not kept at all.
func TestBoundInBytes(t *testing.T) {
	c := NewClock[val](1000, 125)
	ss := slots(100)
	for i, s := range ss {
		c.Put(s, &val{i}, 100)
		if u := c.Used(); u > 1000 {
			t.Fatalf("after %d puts, %d bytes kept over a bound of 1000", i+1, u)
		}
	}
	kept := 0
	for _, s := range ss {
		if s.Load(c) != nil {
			kept++
		}
	}
	if kept != 10 || c.Len() != 10 {
		t.Errorf("%d values kept (Len %d), want 10 of 100 bytes each under 1000", kept, c.Len())
	}
	if c.Put(new(Slot[val]), &val{}, 126) {
		t.Error("a value of 126 bytes was kept under a bound of 125 a value")
	}
	c.SetMax(500, 125)
	if u, n := c.Used(), c.Len(); u > 500 || n != 5 {
		t.Errorf("after the bound was lowered to 500: %d bytes in %d values kept", u, n)
	}
}

// A value used since the hand last passed stays; one not used makes room.
func TestUsedValuesStay(t *testing.T) {
	c := NewClock[val](800, 125)
	ss := slots(8)
	for i, s := range ss {
		if !c.Put(s, &val{i}, 100) {
			t.Fatal("not kept with room left")
		}
	}
	hot := ss[3]
	for round := range 50 {
		if hot.Load(c) == nil {
			t.Fatalf("the value used between every put left after %d puts", round)
		}
		c.Put(new(Slot[val]), &val{100 + round}, 100)
	}
	if ss[0].Kept(c) {
		t.Error("the first value, never used, is still kept after 50 puts")
	}
}

// A dropped slot keeps nothing and takes nothing any more; a forgotten
// one may keep a value again.
func TestDropAndForget(t *testing.T) {
	c := NewClock[val](1000, 125)
	s := new(Slot[val])
	c.Put(s, &val{1}, 100)
	c.Drop(s)
	if s.Load(c) != nil || c.Used() != 0 {
		t.Fatalf("after Drop: value %v, %d bytes used", s.Load(c), c.Used())
	}
	if c.Put(s, &val{2}, 100) {
		t.Error("a dropped slot kept a value")
	}
	never := new(Slot[val])
	c.Drop(never)
	if c.Put(never, &val{3}, 100) {
		t.Error("a slot dropped before keeping anything kept a value")
	}

	f := new(Slot[val])
	c.Put(f, &val{4}, 100)
	c.Forget(f)
	if f.Load(c) != nil || c.Used() != 0 {
		t.Fatalf("after Forget: value %v, %d bytes used", f.Load(c), c.Used())
	}
	if !c.Put(f, &val{5}, 100) || f.Load(c).n != 5 {
		t.Error("a forgotten slot did not keep a new value")
	}
}

// Puts, loads, drops, forgets and clears from many goroutines keep the
// count of bytes exact (run under -race).
func TestConcurrentUse(t *testing.T) {
	c := NewClock[val](50*100, 125)
	ss := slots(400)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 4000 {
				s := ss[(i*7+g*13)%len(ss)]
				switch i % 5 {
				case 0, 1:
					c.Put(s, &val{i}, 100)
				case 2:
					s.Load(c)
				case 3:
					c.Forget(s)
				case 4:
					if i%50 == 4 {
						c.Drop(s)
					}
					if i%500 == 9 {
						c.Clear()
					}
				}
			}
		}()
	}
	wg.Wait()
	var sum int64
	for _, s := range ss {
		if s.Load(c) != nil {
			sum += 100
		}
	}
	if u := c.Used(); u != sum || u > 5000 {
		t.Errorf("Used = %d, the kept values cost %d (bound 5000)", u, sum)
	}
}
