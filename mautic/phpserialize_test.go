package mautic

import (
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// phpArr builds an *Array from alternating keys and values.
func phpArr(kv ...any) *Array {
	a := &Array{}
	for i := 0; i+1 < len(kv); i += 2 {
		a.Set(kv[i], kv[i+1])
	}
	return a
}

// phpEqual compares Unserialize results: floats by bits (so -0 differs from
// 0) with all NaNs equal, arrays by keys in order and values recursively.
func phpEqual(x, y any) bool {
	switch x := x.(type) {
	case float64:
		y, ok := y.(float64)
		if !ok {
			return false
		}
		if math.IsNaN(x) || math.IsNaN(y) {
			return math.IsNaN(x) && math.IsNaN(y)
		}
		return math.Float64bits(x) == math.Float64bits(y)
	case *Array:
		y, ok := y.(*Array)
		if !ok || x.Len() != y.Len() {
			return false
		}
		for i, k := range x.keys {
			if y.keys[i] != k || !phpEqual(x.vals[i], y.vals[i]) {
				return false
			}
		}
		return true
	}
	return x == y
}

// requirePHPEqual fails with both values printed when they differ.
func requirePHPEqual(t testing.TB, want, got any) {
	t.Helper()
	if !phpEqual(want, got) {
		t.Fatalf("values differ\nwant: %s\n got: %s", phpDebug(want), phpDebug(got))
	}
}

// phpDebug prints a value unambiguously (serialized when possible).
func phpDebug(v any) string {
	b, err := Serialize(v)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

// vectorStored is the encrypted value of mautic-reference.md 9.2.
const vectorStored = "NW5SeEJsdDl5N3VTUHVOeUoyMisxTG5YS1NJMytwQkVoWFFnbGlJaElic3k1OUpqaHF1MndZbmx4UURYaHhQQVpTelpyN05vT1krNFBrbnU5L1dLSUhqVGwweDJSNHBsTHVrbzNJWjNWczZpZkFkaXBPK1MycTNOZmtmTWtMOGg=|MTIzNDU2Nzg5MGFiY2RlZg=="

func TestPHPUnserialize(t *testing.T) {
	nested := &Array{}
	cur := nested
	for range phpMaxDepth - 1 {
		next := &Array{}
		cur.Set(0, next)
		cur = next
	}
	tests := []struct {
		name string
		in   string
		want any
	}{
		{"null", `N;`, nil},
		{"true", `b:1;`, true},
		{"false", `b:0;`, false},
		{"zero", `i:0;`, int64(0)},
		{"negative int", `i:-42;`, int64(-42)},
		{"plus sign and leading zeros", `i:+007;`, int64(7)},
		{"max int", `i:9223372036854775807;`, int64(math.MaxInt64)},
		{"min int", `i:-9223372036854775808;`, int64(math.MinInt64)},
		{"float", `d:0.1;`, 0.1},
		{"float without fraction", `d:1;`, 1.0},
		{"negative zero", `d:-0;`, math.Copysign(0, -1)},
		{"float exponent", `d:1.0E+25;`, 1e25},
		{"float negative exponent", `d:1.5E-7;`, 1.5e-7},
		{"float lower-case exponent", `d:2e3;`, 2000.0},
		{"float leading dot", `d:.5;`, 0.5},
		{"float trailing dot", `d:5.;`, 5.0},
		{"float PHP 7.0 precision 17", `d:0.10000000000000001;`, 0.1},
		{"float overflow is INF like PHP", `d:1e999;`, math.Inf(1)},
		{"INF", `d:INF;`, math.Inf(1)},
		{"-INF", `d:-INF;`, math.Inf(-1)},
		{"NAN", `d:NAN;`, math.NaN()},
		{"empty string", `s:0:"";`, ""},
		{"multibyte string counts bytes", `s:5:"héll";`, "héll"},
		{"CJK string", `s:6:"日本";`, "日本"},
		{"string with quote and semicolon", `s:4:"a";b";`, `a";b`},
		{"string with NUL", "s:3:\"a\x00b\";", "a\x00b"},
		{"empty array (1.3)", `a:0:{}`, &Array{}},
		{"array of empty array (1.3)", `a:1:{i:0;a:0:{}}`, phpArr(0, &Array{})},
		{"metadata (1.3)", `a:1:{s:8:"metadata";a:1:{s:1:"a";i:1;}}`, phpArr("metadata", phpArr("a", int64(1)))},
		{"list", `a:2:{i:0;s:1:"a";i:1;s:1:"b";}`, phpArr(0, "a", 1, "b")},
		{"mixed keys keep order", `a:3:{s:1:"z";b:1;i:-5;d:1.5;i:3;a:2:{i:0;b:1;i:1;N;}}`,
			phpArr("z", true, -5, 1.5, 3, phpArr(0, true, 1, nil))},
		{"numeric string key becomes int", `a:1:{s:1:"5";i:1;}`, phpArr(int64(5), int64(1))},
		{"non-canonical numeric keys stay strings", `a:3:{s:2:"05";N;s:2:"-0";N;s:2:"+1";N;}`,
			phpArr("05", nil, "-0", nil, "+1", nil)},
		{"duplicate key replaces in place", `a:3:{i:0;s:1:"x";i:1;N;i:0;s:1:"y";}`, phpArr(0, "y", 1, nil)},
		{"api_keys with an encrypted value (9.2)", `a:1:{s:8:"username";s:197:"` + vectorStored + `";}`,
			phpArr("username", vectorStored)},
		{"nesting at the depth limit", strings.Repeat("a:1:{i:0;", phpMaxDepth-1) + "a:0:{}" + strings.Repeat("}", phpMaxDepth-1), nested},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Unserialize([]byte(tc.in))
			require.NoError(t, err)
			requirePHPEqual(t, tc.want, got)
		})
	}
}

func TestPHPUnserializeErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // the full message, offset included
	}{
		{"empty", ``, "php unserialize: offset 0: unexpected end of input, expected a value"},
		{"unknown type", `x:1;`, "php unserialize: offset 0: expected a value type (N, b, i, d, s or a)"},
		{"N without semicolon", `N`, "php unserialize: offset 1: unexpected end of input, expected ';' after N"},
		{"bool 2", `b:2;`, "php unserialize: offset 2: expected 0 or 1 in boolean"},
		{"int truncated", `i:5`, "php unserialize: offset 3: unexpected end of input, expected ';' after integer"},
		{"int no digits", `i:;`, "php unserialize: offset 2: expected digits in integer"},
		{"int garbage", `i:12x;`, "php unserialize: offset 4: expected ';' after integer"},
		{"int overflow", `i:9223372036854775808;`, "php unserialize: offset 2: integer out of int64 range"},
		{"int underflow", `i:-9223372036854775809;`, "php unserialize: offset 2: integer out of int64 range"},
		{"int very long", `i:` + strings.Repeat("9", 100) + `;`, "php unserialize: offset 2: integer out of int64 range"},
		{"float no digits", `d:;`, "php unserialize: offset 2: expected digits in float"},
		{"float bare dot", `d:.;`, "php unserialize: offset 3: expected digits in float"},
		{"float empty exponent", `d:1e;`, "php unserialize: offset 4: expected digits in float exponent"},
		{"float hex", `d:0x10;`, "php unserialize: offset 3: expected ';' after float"},
		{"float +INF", `d:+INF;`, "php unserialize: offset 3: expected digits in float"},
		{"float inf lower case", `d:inf;`, "php unserialize: offset 2: expected digits in float"},
		{"float truncated", `d:1.5`, "php unserialize: offset 5: unexpected end of input, expected ';' after float"},
		{"string longer than input", `s:6:"abc";`, "php unserialize: offset 2: string length 6 exceeds the remaining input"},
		{"string too long", `s:5:"abc";`, "php unserialize: offset 10: unexpected end of input, expected '\"' after string bytes (string length wrong?)"},
		{"string too short", `s:2:"abc";`, "php unserialize: offset 7: expected '\"' after string bytes (string length wrong?)"},
		{"string without semicolon", `s:3:"abc"`, "php unserialize: offset 9: unexpected end of input, expected ';' after string"},
		{"string no quote", `s:3:abc;`, "php unserialize: offset 4: expected '\"' before string bytes"},
		{"string negative length", `s:-1:"";`, "php unserialize: offset 2: expected digits in string length"},
		{"string huge length", `s:99999999999999999999999:"";`, "php unserialize: offset 2: string length out of range"},
		{"array truncated", `a:1:{i:0;N;`, "php unserialize: offset 11: unexpected end of input, expected '}' to close array (array count wrong?)"},
		{"array count beyond input", `a:2:{i:0;N;}`, "php unserialize: offset 2: array count 2 exceeds what the remaining input can hold"},
		{"array missing brace", `a:1:{i:0;s:3:"abc";`, "php unserialize: offset 19: unexpected end of input, expected '}' to close array (array count wrong?)"},
		{"array count too small", `a:1:{i:0;N;i:1;N;}`, "php unserialize: offset 11: expected '}' to close array (array count wrong?)"},
		{"array count too large", `a:2:{i:0;s:10:"0123456789";}`, "php unserialize: offset 27: expected an array key (i: or s:)"},
		{"array huge count", `a:999999999999:{}`, "php unserialize: offset 2: array count 999999999999 exceeds what the remaining input can hold"},
		{"array count overflow", `a:99999999999999999999999:{}`, "php unserialize: offset 2: array count out of range"},
		{"array null key", `a:1:{N;s:3:"abc";}`, "php unserialize: offset 5: expected an array key (i: or s:)"},
		{"array array key", `a:1:{a:0:{}N;}`, "php unserialize: offset 5: expected an array key (i: or s:)"},
		{"array float key", `a:1:{d:1.5;N;}`, "php unserialize: offset 5: expected an array key (i: or s:)"},
		{"array no brace", `a:0:}`, "php unserialize: offset 4: expected '{' to open array"},
		{"object", `O:8:"stdClass":0:{}`, "php unserialize: offset 0: objects (O:, C:) are not allowed"},
		{"nested object", `a:1:{i:0;O:8:"stdClass":0:{}}`, "php unserialize: offset 9: objects (O:, C:) are not allowed"},
		{"custom object", `C:3:"Foo":0:{}`, "php unserialize: offset 0: objects (O:, C:) are not allowed"},
		{"enum", `E:7:"Foo:Bar";`, "php unserialize: offset 0: enums (E:) are not allowed"},
		{"reference", `a:2:{i:0;i:1;i:1;R:2;}`, "php unserialize: offset 17: references (r:, R:) are not allowed"},
		{"object reference", `r:1;`, "php unserialize: offset 0: references (r:, R:) are not allowed"},
		{"escaped string", `S:3:"abc";`, "php unserialize: offset 0: escaped strings (S:) are not supported"},
		{"trailing value", `N;N;`, "php unserialize: offset 2: unexpected data after the value"},
		{"trailing space", `a:0:{} `, "php unserialize: offset 6: unexpected data after the value"},
		{"too deep", strings.Repeat("a:1:{i:0;", phpMaxDepth) + "a:0:{}" + strings.Repeat("}", phpMaxDepth),
			"php unserialize: offset 576: arrays nested deeper than 64 levels"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Unserialize([]byte(tc.in))
			require.Error(t, err)
			require.Nil(t, v)
			require.EqualError(t, err, tc.wantErr)
			var ue *UnserializeError
			require.True(t, errors.As(err, &ue))
			require.LessOrEqual(t, ue.Offset, len(tc.in))
		})
	}
}

func TestSerialize(t *testing.T) {
	type reason int
	type label string
	str := "x"
	ordered := phpArr("z", 1, 0, "first", "5", "five")
	ordered.Set("z", 2) // replaced in place, keeps its position
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"nil", nil, `N;`},
		{"true", true, `b:1;`},
		{"false", false, `b:0;`},
		{"int", 5, `i:5;`},
		{"negative int8", int8(-3), `i:-3;`},
		{"int64 min", int64(math.MinInt64), `i:-9223372036854775808;`},
		{"uint64", uint64(7), `i:7;`},
		{"named int", reason(2), `i:2;`},
		{"float64", 0.1, `d:0.1;`},
		{"float32 widened exactly", float32(0.1), `d:0.10000000149011612;`},
		{"float32 exact", float32(0.5), `d:0.5;`},
		{"string", "abc", `s:3:"abc";`},
		{"multibyte string", "héll", `s:5:"héll";`},
		{"named string", label("ab"), `s:2:"ab";`},
		{"bytes", []byte("a\x00b"), "s:3:\"a\x00b\";"},
		{"byte array", [2]byte{'h', 'i'}, `s:2:"hi";`},
		{"pointer", &str, `s:1:"x";`},
		{"nil pointer", (*string)(nil), `N;`},
		{"empty list (1.3)", []any{}, `a:0:{}`},
		{"nil slice is empty array", []any(nil), `a:0:{}`},
		{"list of empty list (1.3)", []any{[]any{}}, `a:1:{i:0;a:0:{}}`},
		{"metadata (1.3)", map[string]any{"metadata": map[string]any{"a": 1}}, `a:1:{s:8:"metadata";a:1:{s:1:"a";i:1;}}`},
		{"string list", []string{"mobile", "email"}, `a:2:{i:0;s:6:"mobile";i:1;s:5:"email";}`},
		{"int slice", []int{3, -1}, `a:2:{i:0;i:3;i:1;i:-1;}`},
		{"string map sorted, numeric key as int", map[string]string{"b": "2", "a": "1", "5": "x", "05": "y"},
			`a:4:{s:2:"05";s:1:"y";i:5;s:1:"x";s:1:"a";s:1:"1";s:1:"b";s:1:"2";}`},
		{"int-keyed map sorted numerically", map[int]string{10: "b", -1: "a", 2: "c"}, `a:3:{i:-1;s:1:"a";i:2;s:1:"c";i:10;s:1:"b";}`},
		{"named-key map", map[label]int{"k": 1}, `a:1:{s:1:"k";i:1;}`},
		{"nil map is empty array", map[string]any(nil), `a:0:{}`},
		{"*Array keeps order", ordered, `a:3:{s:1:"z";i:2;i:0;s:5:"first";i:5;s:4:"five";}`},
		{"Array value", *phpArr("k", nil), `a:1:{s:1:"k";N;}`},
		{"nil *Array", (*Array)(nil), `N;`},
		{"nested mix", []any{phpArr("a", []string{"b"}), map[string]bool{"t": true}, nil, 1.5},
			`a:4:{i:0;a:1:{s:1:"a";a:1:{i:0;s:1:"b";}}i:1;a:1:{s:1:"t";b:1;}i:2;N;i:3;d:1.5;}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Serialize(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, string(got))
		})
	}
}

func TestSerializeErrors(t *testing.T) {
	self := &Array{}
	self.Set("self", self)
	loop := []any{nil}
	loop[0] = loop
	tests := []struct {
		name    string
		in      any
		wantErr string
	}{
		{"chan", make(chan int), "php serialize: unsupported type chan int"},
		{"struct", struct{ A int }{1}, "php serialize: unsupported type struct { A int }"},
		{"func in a list", []any{func() {}}, "php serialize: unsupported type func()"},
		{"uint64 above int64", uint64(math.MaxUint64), "php serialize: unsigned integer above math.MaxInt64 (PHP has no such int)"},
		{"float map key", map[float64]string{1: "a"}, "php serialize: unsupported map key type float64"},
		{"array cycle", self, "php serialize: arrays nested deeper than 64 levels (a cycle?)"},
		{"slice cycle", loop, "php serialize: arrays nested deeper than 64 levels (a cycle?)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Serialize(tc.in)
			require.EqualError(t, err, tc.wantErr)
			require.Nil(t, got)
		})
	}
}

// phpPointOne is a variable so that 0.1+0.2 is computed in float64 at run
// time, not exactly as a constant expression.
var phpPointOne = 0.1

func TestSerializeFloat(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, `d:0;`},
		{math.Copysign(0, -1), `d:-0;`},
		{1, `d:1;`},
		{-1.5, `d:-1.5;`},
		{100, `d:100;`},
		{0.1, `d:0.1;`},
		{phpPointOne + 0.2, `d:0.30000000000000004;`},
		{1.0 / 3, `d:0.3333333333333333;`},
		{0.0001, `d:0.0001;`},
		{0.00001, `d:1.0E-5;`},
		{0.000015, `d:1.5E-5;`},
		{1.5e-7, `d:1.5E-7;`},
		{1e15, `d:1000000000000000;`},
		{1e16, `d:10000000000000000;`},
		{1e17, `d:1.0E+17;`},
		{1.5e17, `d:1.5E+17;`},
		{123456789012345678, `d:1.2345678901234568E+17;`},
		{12345678901234567, `d:12345678901234568;`},
		{1e25, `d:1.0E+25;`},
		{-2.5e100, `d:-2.5E+100;`},
		{math.MaxFloat64, `d:1.7976931348623157E+308;`},
		{math.SmallestNonzeroFloat64, `d:5.0E-324;`},
		{math.Inf(1), `d:INF;`},
		{math.Inf(-1), `d:-INF;`},
		{math.NaN(), `d:NAN;`},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			got, err := Serialize(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, string(got))
			back, err := Unserialize(got)
			require.NoError(t, err)
			requirePHPEqual(t, tc.in, back)
		})
	}
}

func TestSerializeArray(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"nil is N;", nil, `N;`},
		{"nil *Array is N;", (*Array)(nil), `N;`},
		{"string is empty array", "x", `a:0:{}`},
		{"int is empty array", 5, `a:0:{}`},
		{"bool is empty array", true, `a:0:{}`},
		{"float is empty array", 1.5, `a:0:{}`},
		{"bytes are a string, so empty array", []byte("x"), `a:0:{}`},
		{"empty array", &Array{}, `a:0:{}`},
		{"list", []string{"a"}, `a:1:{i:0;s:1:"a";}`},
		{"map", map[string]string{"username": "u"}, `a:1:{s:8:"username";s:1:"u";}`},
		{"Array value", *phpArr(0, 1), `a:1:{i:0;i:1;}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SerializeArray(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, string(got))
		})
	}
	t.Run("unsupported type is an error", func(t *testing.T) {
		_, err := SerializeArray(struct{}{})
		require.EqualError(t, err, "php serialize: unsupported type struct {}")
	})
}

func TestPHPArray(t *testing.T) {
	t.Run("zero value is empty", func(t *testing.T) {
		var a Array
		require.Equal(t, 0, a.Len())
		_, ok := a.Get("x")
		require.False(t, ok)
		require.Empty(t, a.Keys())
		require.True(t, a.IsList())
	})
	t.Run("numeric string and int address the same key", func(t *testing.T) {
		a := &Array{}
		a.Set("5", "a")
		a.Set(5, "b")
		a.Set(uint8(5), "c")
		require.Equal(t, 1, a.Len())
		v, ok := a.Get("5")
		require.True(t, ok)
		require.Equal(t, "c", v)
		require.Equal(t, []any{int64(5)}, a.Keys())
	})
	t.Run("PHP key casts", func(t *testing.T) {
		a := &Array{}
		a.Set(true, "t")
		a.Set(false, "f")
		a.Set(nil, "n")
		a.Set(uint64(math.MaxUint64), "big")
		a.Set("05", "s")
		require.Equal(t, []any{int64(1), int64(0), "", "18446744073709551615", "05"}, a.Keys())
		v, ok := a.Get("")
		require.True(t, ok)
		require.Equal(t, "n", v)
	})
	t.Run("replace keeps position", func(t *testing.T) {
		a := phpArr("a", 1, "b", 2, "c", 3)
		a.Set("b", 20)
		require.Equal(t, []any{"a", "b", "c"}, a.Keys())
		require.Equal(t, []any{1, 20, 3}, a.Values())
	})
	t.Run("illegal key panics", func(t *testing.T) {
		require.Panics(t, func() { (&Array{}).Set(1.5, "x") })
		_, ok := (&Array{}).Get([]int{1})
		require.False(t, ok)
	})
	t.Run("IsList", func(t *testing.T) {
		require.True(t, phpArr(0, "a", 1, "b").IsList())
		require.False(t, phpArr(1, "a").IsList())
		require.False(t, phpArr(1, "a", 0, "b").IsList())
		require.False(t, phpArr("0x", "a").IsList())
	})
	t.Run("All stops early", func(t *testing.T) {
		var keys []any
		for k := range phpArr("a", 1, "b", 2, "c", 3).All() {
			keys = append(keys, k)
			if len(keys) == 2 {
				break
			}
		}
		require.Equal(t, []any{"a", "b"}, keys)
	})
	t.Run("Map", func(t *testing.T) {
		inner := phpArr("x", 1)
		require.Equal(t, map[string]any{"0": "a", "-3": nil, "k": inner},
			phpArr(0, "a", -3, nil, "k", inner).Map())
	})
	t.Run("StringMap casts like PHP", func(t *testing.T) {
		a := phpArr(
			"t", true, "f", false, "n", nil,
			"i", int64(-5), "goint", 7,
			"pi", 3.14, "sum", phpPointOne+0.2, "whole", 100.0, "big", 1e15, "tiny", 0.00001, "negzero", math.Copysign(0, -1),
			"inf", math.Inf(1), "nan", math.NaN(),
			"s", "text", "nested", phpArr(0, 1),
		)
		require.Equal(t, map[string]string{
			"t": "1", "f": "", "n": "",
			"i": "-5", "goint": "7",
			"pi": "3.14", "sum": "0.3", "whole": "100", "big": "1.0E+15", "tiny": "1.0E-5", "negzero": "-0",
			"inf": "INF", "nan": "NAN",
			"s": "text",
		}, a.StringMap())
	})
	t.Run("decoded api_keys", func(t *testing.T) {
		v, err := Unserialize([]byte(`a:2:{s:8:"username";s:2:"AC";s:8:"password";i:12;}`))
		require.NoError(t, err)
		a, ok := v.(*Array)
		require.True(t, ok)
		require.Equal(t, map[string]string{"username": "AC", "password": "12"}, a.StringMap())
	})
}

// phpGen generates canonical values, as Unserialize returns them.
func phpGen(r *rand.Rand, depth int) any {
	n := 8
	if depth >= 4 {
		n = 7 // no more arrays
	}
	switch r.IntN(n) {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 1
	case 2:
		switch r.IntN(3) {
		case 0:
			return int64(r.IntN(2000) - 1000)
		case 1:
			return []int64{math.MinInt64, math.MaxInt64, 0, -1}[r.IntN(4)]
		}
		return int64(r.Uint64())
	case 3:
		switch r.IntN(4) {
		case 0:
			return math.Float64frombits(r.Uint64()) // any bit pattern, NaNs included
		case 1:
			return []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), 1e16, 1e17, 1e-4, 1e-5}[r.IntN(8)]
		case 2:
			return r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20))
		}
		return float64(r.IntN(1000)) / 8
	case 4, 5, 6:
		return phpGenString(r)
	}
	a := &Array{}
	for i := range r.IntN(6) {
		var k any = int64(i)
		switch r.IntN(3) {
		case 0:
			k = phpGenString(r)
		case 1:
			k = int64(r.IntN(20) - 10)
		}
		a.Set(k, phpGen(r, depth+1))
	}
	return a
}

func phpGenString(r *rand.Rand) string {
	alphabet := []string{"a", "Z", "0", "5", "-", "\"", ";", ":", "{", "}", "\x00", "\xff", "é", "日", " ", "s:1:\"", "a:1:{"}
	var sb strings.Builder
	for range r.IntN(8) {
		sb.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return sb.String()
}

// phpCheckRoundTrip requires Unserialize(Serialize(v)) to equal v and the
// second serialization to be identical.
func phpCheckRoundTrip(t testing.TB, v any) {
	t.Helper()
	b, err := Serialize(v)
	require.NoError(t, err)
	back, err := Unserialize(b)
	require.NoError(t, err, "input %q", b)
	requirePHPEqual(t, v, back)
	b2, err := Serialize(back)
	require.NoError(t, err)
	require.Equal(t, string(b), string(b2))
}

func TestSerializeRoundTripGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		phpCheckRoundTrip(t, phpGen(r, 0))
	}
}

// FuzzSerializeRoundTrip is TestSerializeRoundTripGenerated with fuzzed seeds.
func FuzzSerializeRoundTrip(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, s1, s2 uint64) {
		phpCheckRoundTrip(t, phpGen(rand.New(rand.NewPCG(s1, s2)), 0))
	})
}

// FuzzUnserialize checks that Unserialize never panics, that its errors are
// *UnserializeError with an offset inside the input, and that whatever it
// accepts serializes and reads back to the same value.
func FuzzUnserialize(f *testing.F) {
	for _, seed := range []string{
		`N;`, `b:1;`, `i:-42;`, `d:0.1;`, `d:1.0E+25;`, `d:-0;`, `d:NAN;`, `d:-INF;`,
		`s:5:"héll";`, `s:4:"a";b";`,
		`a:0:{}`, `a:1:{i:0;a:0:{}}`, `a:1:{s:8:"metadata";a:1:{s:1:"a";i:1;}}`,
		`a:3:{i:0;s:1:"x";i:1;N;i:0;s:1:"y";}`, `a:1:{s:1:"5";i:1;}`,
		`a:2:{s:8:"username";s:2:"AC";s:8:"password";d:1.5;}`,
		`O:8:"stdClass":0:{}`, `a:2:{i:0;i:1;i:1;R:2;}`, `a:999999999999:{}`,
		strings.Repeat("a:1:{i:0;", 70) + "N;" + strings.Repeat("}", 70),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Unserialize(data)
		if err != nil {
			var ue *UnserializeError
			require.ErrorAs(t, err, &ue)
			require.GreaterOrEqual(t, ue.Offset, 0)
			require.LessOrEqual(t, ue.Offset, len(data))
			return
		}
		phpCheckRoundTrip(t, v)
	})
}

// TestSerializeStringMap checks the string map's own path against the
// general one: the Array that Set builds from the map in sorted key order.
func TestSerializeStringMap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	numeric := []string{"0", "5", "-3", "05", "-0", "+5", "9223372036854775807", "9223372036854775808", "-9223372036854775808", " 1"}
	for range 2000 {
		m := map[string]string{}
		for range r.IntN(8) {
			k := phpGenString(r)
			if r.IntN(3) == 0 {
				k = numeric[r.IntN(len(numeric))]
			}
			m[k] = phpGenString(r)
		}
		a := &Array{}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			a.Set(k, m[k])
		}
		want, err := Serialize(a)
		require.NoError(t, err)
		got, err := Serialize(m)
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	}
}

// BenchmarkSerializeTokens serializes an email stat's tokens: the contact's
// fields found in a typical email plus Mautic's email tokens.
func BenchmarkSerializeTokens(b *testing.B) {
	tokens := map[string]string{
		"{contactfield=firstname}": "Ada", "{contactfield=lastname}": "Lovelace", "{contactfield=email}": "ada@example.test",
		"{contactfield=city}": "London", "{contactfield=companyname}": "Analytical Engines Ltd",
		"{unsubscribe_url}":  "https://mautic.example.test/email/unsubscribe/6564e4b1a2c3d4e5f6a7b8c9",
		"{unsubscribe_text}": `<a href="https://mautic.example.test/email/unsubscribe/6564e4b1a2c3d4e5f6a7b8c9">Unsubscribe</a>`,
		"{dnc_url}":          "https://mautic.example.test/email/dnc/6564e4b1a2c3d4e5f6a7b8c9",
		"{webview_url}":      "https://mautic.example.test/email/view/6564e4b1a2c3d4e5f6a7b8c9",
		"{webview_text}":     `<a href="https://mautic.example.test/email/view/6564e4b1a2c3d4e5f6a7b8c9">View in browser</a>`,
		"{signature}":        "Best regards, Mautic", "{subject}": "Hello Ada",
		"{tracking_pixel}": "https://mautic.example.test/email/6564e4b1a2c3d4e5f6a7b8c9.gif",
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Serialize(tokens); err != nil {
			b.Fatal(err)
		}
	}
}
