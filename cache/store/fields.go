package store

import (
	"iter"
	"net/http"
	"net/textproto"
	"slices"
)

// Fields is a stored response's header fields: name, value pairs in one
// slice (name at even indexes, its value after it), names in canonical
// form (textproto.CanonicalMIMEHeaderKey) and sorted, the values of one
// name next to each other in the order they were received. A stored
// response's header is written once and then only read; as a Go map of
// four fields it takes about 460 bytes of heap, as Fields about 130 (the
// strings are shared either way).
//
// Fields are shared by every reader of a stored entry: never modify one
// (Entry.Clone copies it).
type Fields []string

// FieldsOf returns h's fields as Fields. h's keys are taken as they are:
// http.Header's methods keep them canonical.
func FieldsOf(h http.Header) Fields { return FieldsOfFunc(h, nil) }

// FieldsOfFunc is FieldsOf with only the fields whose name keep accepts
// (all when keep is nil).
func FieldsOfFunc(h http.Header, keep func(name string) bool) Fields {
	n := 0
	var buf [16]string
	names := buf[:0]
	for k, vs := range h {
		if len(vs) > 0 && (keep == nil || keep(k)) {
			names = append(names, k)
			n += len(vs)
		}
	}
	if n == 0 {
		return nil
	}
	slices.Sort(names)
	f := make(Fields, 0, 2*n)
	for _, k := range names {
		for _, v := range h[k] {
			f = append(f, k, v)
		}
	}
	return f
}

// Len returns the number of field values.
func (f Fields) Len() int { return len(f) / 2 }

// index returns the index of the first pair named name (canonical), or -1.
func (f Fields) index(name string) int {
	for i := 0; i+1 < len(f); i += 2 {
		if f[i] == name {
			return i
		}
	}
	return -1
}

// Get returns the first value of the field name, or "", as http.Header.Get
// does.
func (f Fields) Get(name string) string {
	if i := f.index(textproto.CanonicalMIMEHeaderKey(name)); i >= 0 {
		return f[i+1]
	}
	return ""
}

// Values returns the values of the field name, nil when there is none, as
// http.Header.Values does. The slice is read-only: a single value is a
// view of f, not a copy.
func (f Fields) Values(name string) []string {
	name = textproto.CanonicalMIMEHeaderKey(name)
	i := f.index(name)
	if i < 0 {
		return nil
	}
	j := i + 2
	for j+1 < len(f) && f[j] == name {
		j += 2
	}
	if j == i+2 {
		return f[i+1 : i+2 : i+2]
	}
	vs := make([]string, 0, (j-i)/2)
	for ; i < j; i += 2 {
		vs = append(vs, f[i+1])
	}
	return vs
}

// Has tells whether the field name is present.
func (f Fields) Has(name string) bool {
	return f.index(textproto.CanonicalMIMEHeaderKey(name)) >= 0
}

// All yields each name and value, in order.
func (f Fields) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for i := 0; i+1 < len(f); i += 2 {
			if !yield(f[i], f[i+1]) {
				return
			}
		}
	}
}

// Groups yields each field name once, with the pairs of that name (a
// sub-slice of f: name, value, name, value...).
func (f Fields) Groups() iter.Seq2[string, Fields] {
	return func(yield func(string, Fields) bool) {
		for i := 0; i+1 < len(f); {
			name, j := f[i], i+2
			for j+1 < len(f) && f[j] == name {
				j += 2
			}
			if !yield(name, f[i:j:j]) {
				return
			}
			i = j
		}
	}
}

// Names returns the number of distinct field names.
func (f Fields) Names() int {
	n := 0
	for range f.Groups() {
		n++
	}
	return n
}

// Header returns the fields as a new http.Header, for code that needs one
// (the revalidation paths); its value slices share one allocation.
func (f Fields) Header() http.Header {
	h := make(http.Header, len(f)/2)
	f.CopyTo(h, 0)
	return h
}

// CopyTo sets f's fields in h, with value slices of their own: f is shared
// by every reader of a stored entry, and a handler may rewrite h's values
// in place. The slices share one allocation, with room for spare more
// values after them; CopyTo returns it, for the caller's own fields. Each
// slice is capped, so that an append to one moves it to a new array and
// never writes into another's.
func (f Fields) CopyTo(h http.Header, spare int) []string {
	vals := make([]string, 0, f.Len()+spare)
	for i := 0; i+1 < len(f); {
		name, start := f[i], len(vals)
		for ; i+1 < len(f) && f[i] == name; i += 2 {
			vals = append(vals, f[i+1])
		}
		h[name] = vals[start:len(vals):len(vals)]
	}
	return vals
}

// Clone returns a copy of f.
func (f Fields) Clone() Fields {
	if f == nil {
		return nil
	}
	return slices.Clone(f)
}
