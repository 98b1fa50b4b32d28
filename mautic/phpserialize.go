package mautic

// PHP serialize() and unserialize() for Mautic's `array` columns
// (DC2Type:array, mautic-reference.md 1.3). Only the scalar and array part of
// the format is supported: Mautic itself refuses to unserialize objects, and
// the sidecar has no use for references.

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// phpMaxDepth bounds array nesting on both Unserialize and Serialize, so that
// hostile input cannot exhaust the stack and a cyclic Go value (an *Array that
// contains itself) fails instead of recursing forever. Mautic's arrays are
// two or three levels deep; PHP's own default (unserialize_max_depth) is 4096.
const phpMaxDepth = 64

// phpMinElemLen is the size of the smallest array element, `i:0;N;`. A count
// larger than the remaining input divided by it cannot be honest.
const phpMinElemLen = 6

// phpPrealloc caps the capacity reserved from a declared array count, so a
// hostile count never turns into a large allocation before its elements are
// actually read.
const phpPrealloc = 16

// Array is an ordered PHP array: keys are int64 or string, and insertion
// order is kept, as in a PHP hash table. The zero value is an empty array
// ready to use.
//
// Keys are normalised the way PHP does it: a string that is the canonical
// decimal form of an int64 ("5", "-3", but not "05", "+5" or "-0") becomes
// an int64 key, so Set("5", v) and Set(5, v) address the same element.
type Array struct {
	keys  []any // int64 or string
	vals  []any
	index map[any]int // key -> position in keys/vals; nil while empty
}

// Len returns the number of elements.
func (a *Array) Len() int { return len(a.keys) }

// Get returns the value stored under key and whether it exists. key is
// normalised like Set does; a key of an unsupported type is never found.
func (a *Array) Get(key any) (any, bool) {
	k, ok := phpNormalizeKey(key)
	if !ok {
		return nil, false
	}
	i, ok := a.index[k]
	if !ok {
		return nil, false
	}
	return a.vals[i], true
}

// Set stores v under key: it replaces the value in place when the key
// exists, and appends otherwise. key may be a string, any integer type, a
// bool (false→0, true→1) or nil (→""), as in PHP; an unsigned value above
// math.MaxInt64 becomes its decimal string. Set panics on any other key type,
// like PHP's "Illegal offset type": that is a programming error.
func (a *Array) Set(key any, v any) {
	k, ok := phpNormalizeKey(key)
	if !ok {
		panic(fmt.Sprintf("mautic.Array.Set: illegal key type %T", key))
	}
	a.set(k, v)
}

func (a *Array) set(k any, v any) {
	if i, ok := a.index[k]; ok {
		a.vals[i] = v
		return
	}
	if a.index == nil {
		a.index = make(map[any]int)
	}
	a.index[k] = len(a.keys)
	a.keys = append(a.keys, k)
	a.vals = append(a.vals, v)
}

// Keys returns the keys (int64 or string) in order.
func (a *Array) Keys() []any { return slices.Clone(a.keys) }

// Values returns the values in order.
func (a *Array) Values() []any { return slices.Clone(a.vals) }

// All iterates over the key/value pairs in order.
func (a *Array) All() iter.Seq2[any, any] {
	return func(yield func(any, any) bool) {
		for i, k := range a.keys {
			if !yield(k, a.vals[i]) {
				return
			}
		}
	}
}

// IsList reports whether the keys are exactly 0, 1, ..., Len()-1 in that
// order (PHP's array_is_list), e.g. OneSignal's supported_features.
func (a *Array) IsList() bool {
	for i, k := range a.keys {
		if n, ok := k.(int64); !ok || n != int64(i) {
			return false
		}
	}
	return true
}

// Map returns the elements as a Go map with keys stringified (int64 keys in
// decimal). Values are returned as they are; nested arrays stay *Array. When
// an int key and a string key stringify alike, which PHP's key normalisation
// makes impossible, the later element wins.
func (a *Array) Map() map[string]any {
	m := make(map[string]any, len(a.keys))
	for i, k := range a.keys {
		m[phpKeyString(k)] = a.vals[i]
	}
	return m
}

// StringMap returns the scalar elements as strings, cast the way PHP's
// (string) cast does: true→"1", false→"", nil→"", integers in decimal, floats
// with PHP 8's default precision of 14 significant digits (0.1+0.2→"0.3",
// 1e15→"1.0E+15"). Nested arrays are left out (PHP would give the useless
// "Array").
func (a *Array) StringMap() map[string]string {
	m := make(map[string]string, len(a.keys))
	for i, k := range a.keys {
		if s, ok := phpCastString(a.vals[i]); ok {
			m[phpKeyString(k)] = s
		}
	}
	return m
}

// phpCastString casts a scalar like PHP's (string); ok is false for arrays
// and other non-scalar values.
func phpCastString(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "", true
	case string:
		return v, true
	case []byte:
		return string(v), true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Bool:
		if rv.Bool() {
			return "1", true
		}
		return "", true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(rv.Uint(), 10), true
	case reflect.Float32, reflect.Float64:
		return phpFormatFloat(rv.Float(), 14), true
	case reflect.String:
		return rv.String(), true
	}
	return "", false
}

func phpKeyString(k any) string {
	if n, ok := k.(int64); ok {
		return strconv.FormatInt(n, 10)
	}
	s, _ := k.(string)
	return s
}

// phpNormalizeKey turns a Go key into the int64 or string key PHP would use.
func phpNormalizeKey(key any) (any, bool) {
	switch k := key.(type) {
	case string:
		if n, ok := phpNumericKey(k); ok {
			return n, true
		}
		return k, true
	case int64:
		return k, true
	case int:
		return int64(k), true
	case int8:
		return int64(k), true
	case int16:
		return int64(k), true
	case int32:
		return int64(k), true
	case uint8:
		return int64(k), true
	case uint16:
		return int64(k), true
	case uint32:
		return int64(k), true
	case uint:
		return phpUintKey(uint64(k)), true
	case uint64:
		return phpUintKey(k), true
	case bool:
		if k {
			return int64(1), true
		}
		return int64(0), true
	case nil:
		return "", true
	}
	return nil, false
}

func phpUintKey(u uint64) any {
	if u > math.MaxInt64 {
		return strconv.FormatUint(u, 10)
	}
	return int64(u)
}

// phpNumericKey reports whether s is an integer-like string key that PHP
// stores as an int key (ZEND_HANDLE_NUMERIC_STR): an optional '-', then
// decimal digits without a leading zero (except "0" itself), "-0" excluded,
// and within the int64 range.
func phpNumericKey(s string) (int64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	digits := s
	if digits[0] == '-' {
		digits = digits[1:]
		if digits == "" || digits[0] == '0' {
			return 0, false // "-" and "-0..." stay strings
		}
	}
	if digits[0] == '0' && len(digits) > 1 {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// UnserializeError says where and why Unserialize rejected its input. Its
// message never quotes the input, so it is safe to log for secret values.
type UnserializeError struct {
	// Offset is the byte offset in the input where the problem was found.
	Offset int
	// Reason says what was expected or what is not allowed.
	Reason string
}

// Error implements error.
func (e *UnserializeError) Error() string {
	return fmt.Sprintf("php unserialize: offset %d: %s", e.Offset, e.Reason)
}

// Unserialize parses the output of PHP's serialize(). It returns nil, bool,
// int64, float64, string or *Array (nested arrays are *Array too).
//
// It is stricter than PHP: objects (O:, C:), enums (E:), references (r:, R:)
// and the deprecated escaped strings (S:) are refused, as are integers out of
// the int64 range (PHP clamps them with a warning), arrays nested deeper than
// 64 levels and anything after the value. Array keys that are numeric strings
// become int64 keys and a repeated key replaces the earlier value in place, as
// in PHP. Errors are *UnserializeError.
func Unserialize(data []byte) (any, error) {
	d := phpDecoder{data: data}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	if d.pos != len(d.data) {
		return nil, d.errorf("unexpected data after the value")
	}
	return v, nil
}

type phpDecoder struct {
	data []byte
	pos  int
}

func (d *phpDecoder) errorf(format string, args ...any) error {
	return &UnserializeError{Offset: d.pos, Reason: fmt.Sprintf(format, args...)}
}

func (d *phpDecoder) eof() bool { return d.pos >= len(d.data) }

// expect consumes the byte c or fails with "expected c <context>".
func (d *phpDecoder) expect(c byte, context string) error {
	if d.eof() {
		return d.errorf("unexpected end of input, expected '%c' %s", c, context)
	}
	if d.data[d.pos] != c {
		return d.errorf("expected '%c' %s", c, context)
	}
	d.pos++
	return nil
}

func (d *phpDecoder) value(depth int) (any, error) {
	if d.eof() {
		return nil, d.errorf("unexpected end of input, expected a value")
	}
	switch d.data[d.pos] {
	case 'N':
		d.pos++
		if err := d.expect(';', "after N"); err != nil {
			return nil, err
		}
		return nil, nil
	case 'b':
		return d.boolean()
	case 'i':
		return d.integer()
	case 'd':
		return d.float()
	case 's':
		return d.rawString()
	case 'a':
		return d.array(depth + 1)
	case 'O', 'C':
		return nil, d.errorf("objects (O:, C:) are not allowed")
	case 'E':
		return nil, d.errorf("enums (E:) are not allowed")
	case 'r', 'R':
		return nil, d.errorf("references (r:, R:) are not allowed")
	case 'S':
		return nil, d.errorf("escaped strings (S:) are not supported")
	}
	return nil, d.errorf("expected a value type (N, b, i, d, s or a)")
}

func (d *phpDecoder) boolean() (any, error) {
	d.pos++
	if err := d.expect(':', "after b"); err != nil {
		return nil, err
	}
	if d.eof() || (d.data[d.pos] != '0' && d.data[d.pos] != '1') {
		return nil, d.errorf("expected 0 or 1 in boolean")
	}
	v := d.data[d.pos] == '1'
	d.pos++
	if err := d.expect(';', "after boolean"); err != nil {
		return nil, err
	}
	return v, nil
}

// digits consumes [0-9]* and returns them.
func (d *phpDecoder) digits() []byte {
	start := d.pos
	for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
		d.pos++
	}
	return d.data[start:d.pos]
}

// unsigned parses PHP's uiv ([0-9]+, leading zeros allowed) used for string
// lengths and array counts.
func (d *phpDecoder) unsigned(what string) (uint64, error) {
	start := d.pos
	ds := d.digits()
	if len(ds) == 0 {
		return 0, d.errorf("expected digits in %s", what)
	}
	var n uint64
	for _, c := range ds {
		if n > (math.MaxUint64-9)/10 {
			d.pos = start
			return 0, d.errorf("%s out of range", what)
		}
		n = n*10 + uint64(c-'0')
	}
	return n, nil
}

func (d *phpDecoder) integer() (any, error) {
	d.pos++
	if err := d.expect(':', "after i"); err != nil {
		return nil, err
	}
	start := d.pos
	neg := false
	if !d.eof() && (d.data[d.pos] == '-' || d.data[d.pos] == '+') {
		neg = d.data[d.pos] == '-'
		d.pos++
	}
	ds := d.digits()
	if len(ds) == 0 {
		return nil, d.errorf("expected digits in integer")
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	var n uint64
	for _, c := range ds {
		if n > (limit-uint64(c-'0'))/10 {
			d.pos = start
			return nil, d.errorf("integer out of int64 range")
		}
		n = n*10 + uint64(c-'0')
	}
	if err := d.expect(';', "after integer"); err != nil {
		return nil, err
	}
	if neg {
		return int64(-n), nil // -(1<<63) wraps to math.MinInt64, as intended
	}
	return int64(n), nil
}

// float parses `d:` followed by NAN, INF, -INF or PHP's
// iv | nv | nvexp grammar: [+-]? (digits | digits? "." digits | digits "." digits?)
// ([eE] [+-]? digits)?.
func (d *phpDecoder) float() (any, error) {
	d.pos++
	if err := d.expect(':', "after d"); err != nil {
		return nil, err
	}
	rest := d.data[d.pos:]
	for _, special := range []struct {
		text string
		v    float64
	}{{"NAN;", math.NaN()}, {"INF;", math.Inf(1)}, {"-INF;", math.Inf(-1)}} {
		if bytes.HasPrefix(rest, []byte(special.text)) {
			d.pos += len(special.text)
			return special.v, nil
		}
	}
	start := d.pos
	if !d.eof() && (d.data[d.pos] == '-' || d.data[d.pos] == '+') {
		d.pos++
	}
	intDigits := len(d.digits())
	fracDigits := 0
	if !d.eof() && d.data[d.pos] == '.' {
		d.pos++
		fracDigits = len(d.digits())
	}
	if intDigits+fracDigits == 0 {
		return nil, d.errorf("expected digits in float")
	}
	if !d.eof() && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if !d.eof() && (d.data[d.pos] == '-' || d.data[d.pos] == '+') {
			d.pos++
		}
		if len(d.digits()) == 0 {
			return nil, d.errorf("expected digits in float exponent")
		}
	}
	text := string(d.data[start:d.pos])
	if err := d.expect(';', "after float"); err != nil {
		return nil, err
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		// Unreachable: the grammar above only lets decimal floats through.
		return nil, &UnserializeError{Offset: start, Reason: "invalid float"}
	}
	// On overflow ParseFloat returns ±Inf, which is what PHP's zend_strtod gives.
	return f, nil
}

// rawString parses `s:<len>:"<len bytes>";` with d.pos on the 's'.
func (d *phpDecoder) rawString() (string, error) {
	d.pos++
	if err := d.expect(':', "after s"); err != nil {
		return "", err
	}
	lenAt := d.pos
	n, err := d.unsigned("string length")
	if err != nil {
		return "", err
	}
	if err := d.expect(':', "after string length"); err != nil {
		return "", err
	}
	if err := d.expect('"', "before string bytes"); err != nil {
		return "", err
	}
	if n > uint64(len(d.data)-d.pos) {
		return "", &UnserializeError{Offset: lenAt, Reason: fmt.Sprintf("string length %d exceeds the remaining input", n)}
	}
	s := string(d.data[d.pos : d.pos+int(n)])
	d.pos += int(n)
	if err := d.expect('"', "after string bytes (string length wrong?)"); err != nil {
		return "", err
	}
	if err := d.expect(';', "after string"); err != nil {
		return "", err
	}
	return s, nil
}

func (d *phpDecoder) array(depth int) (any, error) {
	if depth > phpMaxDepth {
		return nil, d.errorf("arrays nested deeper than %d levels", phpMaxDepth)
	}
	d.pos++
	if err := d.expect(':', "after a"); err != nil {
		return nil, err
	}
	countAt := d.pos
	n, err := d.unsigned("array count")
	if err != nil {
		return nil, err
	}
	if err := d.expect(':', "after array count"); err != nil {
		return nil, err
	}
	if err := d.expect('{', "to open array"); err != nil {
		return nil, err
	}
	// Each element takes at least phpMinElemLen bytes, then comes '}'.
	if remaining := uint64(len(d.data) - d.pos); n > remaining/phpMinElemLen {
		return nil, &UnserializeError{Offset: countAt, Reason: fmt.Sprintf("array count %d exceeds what the remaining input can hold", n)}
	}
	a := &Array{}
	if n > 0 {
		c := int(min(n, phpPrealloc))
		a.keys = make([]any, 0, c)
		a.vals = make([]any, 0, c)
	}
	for range n {
		k, err := d.key()
		if err != nil {
			return nil, err
		}
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		a.set(k, v)
	}
	if err := d.expect('}', "to close array (array count wrong?)"); err != nil {
		return nil, err
	}
	return a, nil
}

// key parses an array key: `i:` or `s:` only, normalised like PHP.
func (d *phpDecoder) key() (any, error) {
	if d.eof() {
		return nil, d.errorf("unexpected end of input, expected an array key")
	}
	switch d.data[d.pos] {
	case 'i':
		return d.integer()
	case 's':
		s, err := d.rawString()
		if err != nil {
			return nil, err
		}
		if n, ok := phpNumericKey(s); ok {
			return n, nil
		}
		return s, nil
	}
	return nil, d.errorf("expected an array key (i: or s:)")
}

// Serialize returns v in PHP's serialize() format. It accepts nil, bool, any
// integer type (unsigned values above math.MaxInt64 are an error: PHP has no
// such int), float32 and float64, string, []byte (as a string), *Array and
// Array, and as arrays any slice, Go array or map with string or integer
// keys (e.g. []any, []string, map[string]string, map[string]any), nested in
// any combination; named types with these kinds too, and pointers to them
// (a nil pointer is N;). Anything else is an error.
//
// Go maps are written with their keys sorted (strings bytewise, integers
// numerically) so the output is deterministic, and a numeric string key such
// as "5" is written as the int key i:5, as PHP would have stored it. A nil
// slice or map is an empty array.
//
// Floats follow PHP >= 7.1 with serialize_precision = -1: the shortest
// representation that round-trips, `d:0.1;`, `d:1;` for 1.0, `d:-0;`,
// `d:INF;`, `d:-INF;`, `d:NAN;`, and the E form (upper-case E, explicit sign,
// ".0" added after a single digit) when the decimal exponent is below -4 or
// above 16: `d:1.0E+25;`, `d:1.0E-5;`, `d:1.5E+17;`, but `d:0.0001;` and
// `d:10000000000000000;` for 1e16 (zend_gcvt in dtoa mode 0 uses 17 as the
// precision of its E-style test). See phpFormatFloat.
func Serialize(v any) ([]byte, error) {
	b, err := phpAppend(nil, v, 0)
	if err != nil {
		return nil, fmt.Errorf("php serialize: %w", err)
	}
	return b, nil
}

// SerializeArray serializes v the way Mautic's ArrayType writes an `array`
// column: nil (or a nil pointer) is `N;`, a value that is not an array (bool,
// number, string) is `a:0:{}`, and an array is Serialize(v). Unsupported
// types are an error, rather than silently stored as an empty array.
func SerializeArray(v any) ([]byte, error) {
	if v == nil {
		return []byte("N;"), nil
	}
	switch v.(type) {
	case *Array, Array:
		return Serialize(v)
	}
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return []byte("N;"), nil
		}
		rv = rv.Elem()
	}
	if rv.Type() == reflect.TypeFor[Array]() {
		return Serialize(v)
	}
	switch rv.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.String:
		return []byte("a:0:{}"), nil
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 { // []byte is a PHP string
			return []byte("a:0:{}"), nil
		}
	}
	return Serialize(v)
}

func phpAppendString(b []byte, s string) []byte {
	b = append(b, "s:"...)
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':', '"')
	b = append(b, s...)
	return append(b, '"', ';')
}

func phpAppendInt(b []byte, n int64) []byte {
	b = append(b, "i:"...)
	b = strconv.AppendInt(b, n, 10)
	return append(b, ';')
}

func phpAppendKey(b []byte, k any) []byte {
	if n, ok := k.(int64); ok {
		return phpAppendInt(b, n)
	}
	s, _ := k.(string)
	return phpAppendString(b, s)
}

func phpAppendArray(b []byte, a *Array, depth int) ([]byte, error) {
	if depth > phpMaxDepth {
		return nil, fmt.Errorf("arrays nested deeper than %d levels (a cycle?)", phpMaxDepth)
	}
	b = append(b, "a:"...)
	b = strconv.AppendInt(b, int64(a.Len()), 10)
	b = append(b, ':', '{')
	var err error
	for i, k := range a.keys {
		b = phpAppendKey(b, k)
		if b, err = phpAppend(b, a.vals[i], depth); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// phpAppendStringMap appends m as phpAppendArray would append the Array
// built from m with Set in sorted key order, without building it: distinct
// strings normalise to distinct keys, so m's length is the count. An email
// stat's tokens take this path for every email sent.
func phpAppendStringMap(b []byte, m map[string]string, depth int) ([]byte, error) {
	if depth > phpMaxDepth {
		return nil, fmt.Errorf("arrays nested deeper than %d levels (a cycle?)", phpMaxDepth)
	}
	size, keys := 16, make([]string, 0, len(m))
	for k, v := range m {
		size += len(k) + len(v) + 24 // s:N:"k";s:N:"v"; with lengths up to 6 digits
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = slices.Grow(b, size)
	b = append(b, "a:"...)
	b = strconv.AppendInt(b, int64(len(m)), 10)
	b = append(b, ':', '{')
	for _, k := range keys {
		if n, ok := phpNumericKey(k); ok {
			b = phpAppendInt(b, n)
		} else {
			b = phpAppendString(b, k)
		}
		b = phpAppendString(b, m[k])
	}
	return append(b, '}'), nil
}

// phpAppend appends the serialization of v; depth is the nesting level of the
// array holding v (0 at the top).
func phpAppend(b []byte, v any, depth int) ([]byte, error) {
	// Fast paths for the common types; reflection handles the rest.
	switch v := v.(type) {
	case nil:
		return append(b, "N;"...), nil
	case bool:
		if v {
			return append(b, "b:1;"...), nil
		}
		return append(b, "b:0;"...), nil
	case int:
		return phpAppendInt(b, int64(v)), nil
	case int64:
		return phpAppendInt(b, v), nil
	case float64:
		return phpAppendFloat(b, v), nil
	case string:
		return phpAppendString(b, v), nil
	case []byte:
		return phpAppendString(b, string(v)), nil
	case *Array:
		if v == nil {
			return append(b, "N;"...), nil
		}
		return phpAppendArray(b, v, depth+1)
	case Array:
		return phpAppendArray(b, &v, depth+1)
	case []any:
		a := &Array{}
		for i, e := range v {
			a.set(int64(i), e)
		}
		return phpAppendArray(b, a, depth+1)
	case []string:
		a := &Array{}
		for i, e := range v {
			a.set(int64(i), e)
		}
		return phpAppendArray(b, a, depth+1)
	case map[string]string:
		return phpAppendStringMap(b, v, depth+1)
	case map[string]any:
		a := &Array{}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			a.Set(k, v[k])
		}
		return phpAppendArray(b, a, depth+1)
	}
	return phpAppendReflect(b, reflect.ValueOf(v), depth)
}

func phpAppendReflect(b []byte, rv reflect.Value, depth int) ([]byte, error) {
	switch rv.Kind() {
	case reflect.Bool:
		return phpAppend(b, rv.Bool(), depth)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return phpAppendInt(b, rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return nil, errors.New("unsigned integer above math.MaxInt64 (PHP has no such int)")
		}
		return phpAppendInt(b, int64(u)), nil
	case reflect.Float32, reflect.Float64:
		// A float32 is widened exactly: float32(0.1) is d:0.10000000149011612;
		// as PHP only has doubles.
		return phpAppendFloat(b, rv.Float()), nil
	case reflect.String:
		return phpAppendString(b, rv.String()), nil
	case reflect.Pointer:
		if rv.IsNil() {
			return append(b, "N;"...), nil
		}
		if depth >= phpMaxDepth {
			return nil, fmt.Errorf("values nested deeper than %d levels (a cycle?)", phpMaxDepth)
		}
		return phpAppend(b, rv.Elem().Interface(), depth+1)
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			if rv.Kind() == reflect.Slice {
				return phpAppendString(b, string(rv.Bytes())), nil
			}
			buf := make([]byte, rv.Len())
			reflect.Copy(reflect.ValueOf(buf), rv)
			return phpAppendString(b, string(buf)), nil
		}
		a := &Array{}
		for i := range rv.Len() {
			a.set(int64(i), rv.Index(i).Interface())
		}
		return phpAppendArray(b, a, depth+1)
	case reflect.Map:
		return phpAppendMap(b, rv, depth)
	}
	return nil, fmt.Errorf("unsupported type %s", rv.Type())
}

func phpAppendMap(b []byte, rv reflect.Value, depth int) ([]byte, error) {
	keys := rv.MapKeys()
	switch rv.Type().Key().Kind() {
	case reflect.String:
		slices.SortFunc(keys, func(x, y reflect.Value) int { return strings.Compare(x.String(), y.String()) })
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		slices.SortFunc(keys, func(x, y reflect.Value) int { return cmp.Compare(x.Int(), y.Int()) })
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		slices.SortFunc(keys, func(x, y reflect.Value) int { return cmp.Compare(x.Uint(), y.Uint()) })
	default:
		return nil, fmt.Errorf("unsupported map key type %s", rv.Type().Key())
	}
	a := &Array{}
	for _, k := range keys {
		var key any
		switch k.Kind() {
		case reflect.String:
			key = k.String()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			key = k.Int()
		default:
			u := k.Uint()
			if u > math.MaxInt64 {
				return nil, errors.New("unsigned map key above math.MaxInt64 (PHP has no such int)")
			}
			key = int64(u)
		}
		a.Set(key, rv.MapIndex(k).Interface())
	}
	return phpAppendArray(b, a, depth+1)
}

func phpAppendFloat(b []byte, f float64) []byte {
	b = append(b, "d:"...)
	b = append(b, phpFormatFloat(f, -1)...)
	return append(b, ';')
}

// phpFormatFloat formats f like PHP's zend_gcvt(f, precision, '.', 'E'):
// precision <= 0 is serialize_precision = -1 (dtoa mode 0: the shortest
// digits that round-trip, with 17 as the E-style threshold), otherwise
// precision significant digits (dtoa mode 2, trailing zeros dropped).
//
// The layout: E-style "d.dddE+x" (with "d.0" for a single digit, exponent
// without leading zeros) when the decimal point position decpt (the value is
// 0.DIGITS × 10^decpt) is below -3 or above the precision; "0.000ddd" when
// decpt <= 0; otherwise plain digits, zero-padded, with a fraction only when
// there are digits left. INF, -INF and NAN are spelled so; -0 keeps its sign.
//
// Go's shortest formatting and dtoa mode 0 agree on the digits (both pick
// the shortest string that round-trips, nearest to the exact value).
func phpFormatFloat(f float64, precision int) string {
	switch {
	case math.IsNaN(f):
		return "NAN"
	case math.IsInf(f, 1):
		return "INF"
	case math.IsInf(f, -1):
		return "-INF"
	}
	ndigit, prec := precision, precision-1
	if precision <= 0 {
		ndigit, prec = 17, -1
	}
	digits, decpt := "0", 1
	if f != 0 {
		s := strconv.FormatFloat(math.Abs(f), 'e', prec, 64) // d.ddde±XX
		e := strings.IndexByte(s, 'e')
		exp, _ := strconv.Atoi(s[e+1:])
		digits = strings.TrimRight(strings.Replace(s[:e], ".", "", 1), "0")
		decpt = exp + 1
	}
	var sb strings.Builder
	if math.Signbit(f) {
		sb.WriteByte('-')
	}
	switch {
	case decpt < -3 || decpt > ndigit:
		sb.WriteByte(digits[0])
		sb.WriteByte('.')
		if len(digits) > 1 {
			sb.WriteString(digits[1:])
		} else {
			sb.WriteByte('0')
		}
		sb.WriteByte('E')
		exp := decpt - 1
		if exp < 0 {
			sb.WriteByte('-')
			exp = -exp
		} else {
			sb.WriteByte('+')
		}
		sb.WriteString(strconv.Itoa(exp))
	case decpt <= 0:
		sb.WriteString("0.")
		sb.WriteString(strings.Repeat("0", -decpt))
		sb.WriteString(digits)
	default:
		if len(digits) <= decpt {
			sb.WriteString(digits)
			sb.WriteString(strings.Repeat("0", decpt-len(digits)))
		} else {
			sb.WriteString(digits[:decpt])
			sb.WriteByte('.')
			sb.WriteString(digits[decpt:])
		}
	}
	return sb.String()
}
