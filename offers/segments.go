package offers

import (
	"strings"
	"unicode/utf8"
)

// SMS encodings: a text in GSM-7 (the GSM 03.38 default alphabet and its
// extension table) packs 7-bit septets; any other character sends the whole
// text in UCS-2, 16 bits per UTF-16 code unit.
const (
	EncodingGSM7 = "GSM-7"
	EncodingUCS2 = "UCS-2"
)

// Segment sizes: a single SMS carries 160 septets or 70 UTF-16 units; a
// concatenated one loses room to its header, leaving 153 or 67 per segment.
const (
	gsmSingle, gsmPart   = 160, 153
	ucs2Single, ucs2Part = 70, 67
)

// gsmBasic is the GSM 03.38 default alphabet: one septet each.
const gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

// gsmExtension is the default alphabet's extension table: an escape and the
// character, two septets each.
const gsmExtension = "\f^{}\\[~]|€"

var gsmSeptets = func() map[rune]int {
	m := make(map[rune]int, 140)
	for _, r := range gsmBasic {
		m[r] = 1
	}
	for _, r := range gsmExtension {
		m[r] = 2
	}
	return m
}()

// Segments is how a text travels as SMS.
type Segments struct {
	// Encoding is EncodingGSM7 or EncodingUCS2.
	Encoding string
	// Units is the text's length in the encoding: septets (an extension
	// character counts two) or UTF-16 code units (an emoji counts two).
	Units int
	// Segments is how many messages the text is billed as; 0 for "".
	Segments int
	// NonGSM is the first character that forced UCS-2, 0 in GSM-7.
	NonGSM rune
}

// CountSegments counts the SMS segments of text as carriers and Twilio do:
// GSM-7 when every character is in the GSM 03.38 default alphabet or its
// extension table, else UCS-2. A concatenated text never splits an escaped
// extension character or a surrogate pair across two segments, so it can take
// one segment more than its length divided by 153 (or 67).
func CountSegments(text string) Segments {
	s := Segments{Encoding: EncodingGSM7}
	for _, r := range text {
		if gsmSeptets[r] == 0 {
			s.Encoding, s.NonGSM = EncodingUCS2, r
			break
		}
	}
	single, part := gsmSingle, gsmPart
	width := func(r rune) int { return gsmSeptets[r] }
	if s.Encoding == EncodingUCS2 {
		single, part = ucs2Single, ucs2Part
		width = func(r rune) int {
			if r >= 0x10000 && r <= utf8.MaxRune {
				return 2 // a surrogate pair
			}
			return 1
		}
	}
	room := 0
	for _, r := range text {
		w := width(r)
		s.Units += w
		if w > room {
			s.Segments++
			room = part
		}
		room -= w
	}
	if s.Units <= single {
		s.Segments = min(s.Segments, 1)
	}
	return s
}

// IsGSM reports whether every character of s is in the GSM-7 alphabet or its
// extension table.
func IsGSM(s string) bool {
	for _, r := range s {
		if gsmSeptets[r] == 0 {
			return false
		}
	}
	return true
}

// gsmUnits is the length of s in septets when it is GSM-7, else in UTF-16
// code units.
func gsmUnits(s string) int { return CountSegments(s).Units }

// gsmLookalikes replaces characters outside GSM-7 that have a close
// equivalent inside it: letters with diacritics the alphabet lacks, typographic
// quotes, dashes and spaces.
var gsmLookalikes = func() *strings.Replacer {
	pairs := []string{
		"á", "a", "â", "a", "ã", "a", "ā", "a", "ă", "a", "ą", "a", "À", "A", "Á", "A", "Â", "A", "Ã", "A", "Ā", "A", "Ă", "A", "Ą", "A",
		"ç", "c", "ć", "c", "ĉ", "c", "ċ", "c", "č", "c", "Ć", "C", "Ĉ", "C", "Ċ", "C", "Č", "C",
		"ď", "d", "đ", "d", "ð", "d", "Ď", "D", "Đ", "D", "Ð", "D",
		"ê", "e", "ë", "e", "ē", "e", "ĕ", "e", "ė", "e", "ę", "e", "ě", "e", "È", "E", "Ê", "E", "Ë", "E", "Ē", "E", "Ė", "E", "Ę", "E", "Ě", "E",
		"ĝ", "g", "ğ", "g", "ġ", "g", "ģ", "g", "Ĝ", "G", "Ğ", "G", "Ġ", "G", "Ģ", "G",
		"ĥ", "h", "ħ", "h", "Ĥ", "H", "Ħ", "H",
		"í", "i", "î", "i", "ï", "i", "ĩ", "i", "ī", "i", "į", "i", "ı", "i", "Ì", "I", "Í", "I", "Î", "I", "Ï", "I", "Ĩ", "I", "Ī", "I", "Į", "I", "İ", "I",
		"ĵ", "j", "Ĵ", "J", "ķ", "k", "Ķ", "K",
		"ĺ", "l", "ļ", "l", "ľ", "l", "ł", "l", "Ĺ", "L", "Ļ", "L", "Ľ", "L", "Ł", "L",
		"ń", "n", "ņ", "n", "ň", "n", "Ń", "N", "Ņ", "N", "Ň", "N",
		"ó", "o", "ô", "o", "õ", "o", "ō", "o", "ő", "o", "Ò", "O", "Ó", "O", "Ô", "O", "Õ", "O", "Ō", "O", "Ő", "O",
		"œ", "oe", "Œ", "OE", "ŕ", "r", "ř", "r", "Ŕ", "R", "Ř", "R",
		"ś", "s", "ŝ", "s", "ş", "s", "š", "s", "ș", "s", "Ś", "S", "Ŝ", "S", "Ş", "S", "Š", "S", "Ș", "S",
		"ţ", "t", "ť", "t", "ț", "t", "Ţ", "T", "Ť", "T", "Ț", "T", "þ", "th", "Þ", "Th",
		"ú", "u", "û", "u", "ũ", "u", "ū", "u", "ŭ", "u", "ů", "u", "ű", "u", "ų", "u",
		"Ú", "U", "Û", "U", "Ù", "U", "Ũ", "U", "Ū", "U", "Ŭ", "U", "Ů", "U", "Ű", "U", "Ų", "U",
		"ŵ", "w", "Ŵ", "W", "ý", "y", "ÿ", "y", "ŷ", "y", "Ý", "Y", "Ÿ", "Y", "Ŷ", "Y",
		"ź", "z", "ż", "z", "ž", "z", "Ź", "Z", "Ż", "Z", "Ž", "Z",
		"‘", "'", "’", "'", "‚", "'", "′", "'", "“", "\"", "”", "\"", "„", "\"", "″", "\"",
		"‐", "-", "‑", "-", "‒", "-", "–", "-", "—", "-", "…", "...", "•", "*", "×", "x",
		"\u00a0", " ", "\u2009", " ", "\u202f", " ", "\t", " ",
	}
	return strings.NewReplacer(pairs...)
}()

// ToGSM replaces the characters of s that GSM-7 lacks by their closest
// equivalents in it where there is one ("Zoë Łukasz" reads "Zoe Lukasz"),
// so that a name does not turn a whole text into UCS-2. Characters without
// one are left as they are.
func ToGSM(s string) string {
	if IsGSM(s) {
		return s
	}
	return gsmLookalikes.Replace(s)
}

// clipUnits shortens s to at most n units of its own encoding (see
// gsmUnits), ending it with "..." when it had to be cut.
func clipUnits(s string, n int) string {
	if gsmUnits(s) <= n {
		return s
	}
	runes := []rune(s)
	for len(runes) > 0 && gsmUnits(string(runes))+3 > n {
		runes = runes[:len(runes)-1]
	}
	kept := string(runes)
	if i := strings.LastIndex(kept, " "); i > len(kept)/2 {
		kept = kept[:i] // at a word's end, when that keeps most of it
	}
	return strings.TrimSpace(kept) + "..."
}
