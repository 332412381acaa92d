package memory

import "iter"

// keySet holds the keys that the tag index has under one tag, or the
// group index under one group, and their items. Most tags and groups
// have one or two keys (a page's own surrogate key; a URL's variant for
// one or two encodings): those are kept in the set itself, and a map, of
// about 256 bytes at least, is made only for a third. A full store of
// entries with one variant each, with a map of its own for each group,
// took 1.78 times its budget of heap (TestIndexesWithinBudget).
type keySet struct {
	keys [2]string
	its  [2]*item // nil for a free place
	more map[string]*item
}

// get returns the item under key, or nil; a nil set has none.
func (s *keySet) get(key string) *item {
	if s == nil {
		return nil
	}
	for i, it := range s.its {
		if it != nil && s.keys[i] == key {
			return it
		}
	}
	return s.more[key]
}

// set puts it under key.
func (s *keySet) set(key string, it *item) {
	free := -1
	for i, x := range s.its {
		if x != nil && s.keys[i] == key {
			s.its[i] = it
			return
		}
		if x == nil && free < 0 {
			free = i
		}
	}
	if _, ok := s.more[key]; ok || free < 0 {
		if s.more == nil {
			s.more = make(map[string]*item)
		}
		s.more[key] = it
		return
	}
	s.keys[free], s.its[free] = key, it
}

// delete removes key, and tells whether the set is empty then.
func (s *keySet) delete(key string) bool {
	for i, x := range s.its {
		if x != nil && s.keys[i] == key {
			s.keys[i], s.its[i] = "", nil
			return s.len() == 0
		}
	}
	delete(s.more, key)
	if len(s.more) == 0 {
		s.more = nil
	}
	return s.len() == 0
}

// len returns the number of keys; a nil set has none.
func (s *keySet) len() int {
	if s == nil {
		return 0
	}
	n := len(s.more)
	for _, it := range s.its {
		if it != nil {
			n++
		}
	}
	return n
}

// all yields the keys and their items.
func (s *keySet) all() iter.Seq2[string, *item] {
	return func(yield func(string, *item) bool) {
		for i, it := range s.its {
			if it != nil && !yield(s.keys[i], it) {
				return
			}
		}
		for k, it := range s.more {
			if !yield(k, it) {
				return
			}
		}
	}
}
