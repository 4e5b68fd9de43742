package offers

import (
	"strings"
	"testing"
)

func TestCountSegments(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	for _, c := range []struct {
		name     string
		text     string
		encoding string
		units    int
		segments int
	}{
		{"empty", "", EncodingGSM7, 0, 0},
		{"hello", "Hello", EncodingGSM7, 5, 1},
		{"160 septets fill one", a(160), EncodingGSM7, 160, 1},
		{"161 need a second", a(161), EncodingGSM7, 161, 2},
		{"306 fill two of 153", a(306), EncodingGSM7, 306, 2},
		{"307 need a third", a(307), EncodingGSM7, 307, 3},
		{"GSM letters with accents stay GSM", "Café für Señor Ørsted, ¿qué? ΔΦ £5 §1 @home", EncodingGSM7, 43, 1},
		{"an extension character counts two", "Price: 10€ [VIP] {x} ~ ^ | \\", EncodingGSM7, 37, 1},
		{"80 euros are 160 septets", strings.Repeat("€", 80), EncodingGSM7, 160, 1},
		{"81 euros are 162", strings.Repeat("€", 81), EncodingGSM7, 162, 2},
		// 152 + 2 + 152 = 306 septets, but the escaped € cannot straddle the
		// first segment's last septet: it opens the second, and 152 more
		// overflow it into a third.
		{"an escape never splits", a(152) + "€" + a(152), EncodingGSM7, 306, 3},
		{"one non-GSM letter makes UCS-2", "Zoë", EncodingUCS2, 3, 1},
		{"lower-case c-cedilla is not GSM", "ç", EncodingUCS2, 1, 1},
		{"70 UCS-2 units fill one", strings.Repeat("ł", 70), EncodingUCS2, 70, 1},
		{"71 need a second of 67", strings.Repeat("ł", 71), EncodingUCS2, 71, 2},
		{"134 fill two", strings.Repeat("ł", 134), EncodingUCS2, 134, 2},
		{"135 need a third", strings.Repeat("ł", 135), EncodingUCS2, 135, 3},
		{"an emoji is two units", "Hi 😀", EncodingUCS2, 5, 1},
		{"35 emoji are 70 units", strings.Repeat("😀", 35), EncodingUCS2, 70, 1},
		// 33 emoji fill 66 of the first 67 units; the 34th's pair opens the second.
		{"36 emoji are 72 units in two", strings.Repeat("😀", 36), EncodingUCS2, 72, 2},
		{"a surrogate pair never splits", strings.Repeat("a", 66) + "😀" + strings.Repeat("a", 66), EncodingUCS2, 134, 3},
		{"curly quotes are not GSM", "it’s", EncodingUCS2, 4, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := CountSegments(c.text)
			if got.Encoding != c.encoding || got.Units != c.units || got.Segments != c.segments {
				t.Fatalf("CountSegments(%q) = %s, %d units, %d segments; want %s, %d, %d",
					c.text, got.Encoding, got.Units, got.Segments, c.encoding, c.units, c.segments)
			}
		})
	}
}

func TestToGSMKeepsTextsInGSM7(t *testing.T) {
	for in, want := range map[string]string{
		"Zoë Łukasz":          "Zoe Lukasz",
		"Sigur Rós – “Live”…": `Sigur Ros - "Live"...`,
		"Café Ørsted":         "Café Ørsted", // already GSM: untouched
		"Đorđe Çelik Œuvre ř": "Dorde Çelik OEuvre r",
	} {
		if got := ToGSM(in); got != want || !IsGSM(got) {
			t.Errorf("ToGSM(%q) = %q (GSM %v), want %q", in, got, IsGSM(got), want)
		}
	}
	if got := ToGSM("李雷"); got != "李雷" {
		t.Errorf("a name without equivalents changed: %q", got)
	}
}

func TestClipUnits(t *testing.T) {
	if got := clipUnits("Short", 10); got != "Short" {
		t.Fatalf("got %q", got)
	}
	if got := clipUnits("The Very Long Name Of A Show", 12); got != "The Very..." || gsmUnits(got) > 12 {
		t.Fatalf("got %q", got)
	}
	if got := clipUnits("[[[[[[[[", 10); gsmUnits(got) > 10 {
		t.Fatalf("extension characters count two: %q is %d septets", got, gsmUnits(got))
	}
}
